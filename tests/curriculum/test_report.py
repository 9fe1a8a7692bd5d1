import json

import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.train.report import make_report

PNG = b"\x89PNG\r\n\x1a\n"


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_report_draws_pngs(tmp_path):
    uniform, shifted = {"ntp": 0.5, "copy": 0.5}, {"ntp": 0.8, "copy": 0.2}
    records = [
        {"kind": "train", "step": 1, "loss": 5.0, "lr": 1e-3, "tokens_per_s": 9.0, "mixture": uniform},
        {"kind": "eval", "step": 2, "val_loss": {"ntp": 4.9, "copy": 5.1}, "mixture": uniform,
         "controller": {"step": 2}},
        {"kind": "train", "step": 5, "loss": 4.5, "lr": 1e-3, "tokens_per_s": 9.0, "mixture": uniform},
        {"kind": "eval", "step": 10, "val_loss": {"ntp": 4.2, "copy": None}, "mixture": shifted,
         "controller": {"step": 10, "reward": 0.9, "class_rewards": {"ntp": 0.9, "copy": 0.0}}},
        {"kind": "train", "step": 15, "loss": 4.0, "lr": 1e-3, "tokens_per_s": 9.0, "mixture": shifted},
    ]  # fmt: skip
    _write(tmp_path / "metrics.jsonl", records)
    paths = make_report(tmp_path)
    assert [p.name for p in paths] == ["losses.png", "mixture.png", "rewards.png"]
    for path in paths:
        assert path.read_bytes().startswith(PNG)


def test_report_uses_eval_mixtures_without_training_records(tmp_path):
    _write(tmp_path / "metrics.jsonl", [
        {"kind": "eval", "step": 2, "val_loss": {"a": 3.0}, "mixture": {"a": 1.0}},
        {"kind": "eval", "step": 4, "val_loss": {"a": 2.0}, "mixture": {"a": 1.0}},
    ])  # fmt: skip
    assert [p.name for p in make_report(tmp_path)] == ["losses.png", "mixture.png"]


def test_missing_or_empty_metrics_is_a_user_error(tmp_path):
    with pytest.raises(BirdieError, match="no metrics.jsonl"):
        make_report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(BirdieError, match="holds no records"):
        make_report(tmp_path)
