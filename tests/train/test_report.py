import json

import numpy as np
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


def test_plots_carry_unit_run_name_steps_and_clipped_rewards(tmp_path, monkeypatch):
    from birdie_ssm.train import report

    (tmp_path / "config.yaml").write_text("name: my-run\n")
    mix = [{"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}, {"a": 0.2, "b": 0.8}]
    records = [
        {"kind": "eval", "step": s, "val_loss": {"a": 3.0 - i, "b": 3.1 - i}, "mixture": mix[i],
         "realised_mixture": None if i == 0 else {"a": 0.6, "b": 0.4},
         "controller": {"step": s, "class_rewards": {"a": [0, 1.0, 0.3][i], "b": [0, -1.0, 0.2][i]}}}
        for i, s in enumerate([0, 2, 10])
    ] + [{"kind": "train", "step": 20, "loss": 1.0, "mixture": mix[2]}]  # fmt: skip
    _write(tmp_path / "metrics.jsonl", records)
    figures = []
    monkeypatch.setattr(report.plt, "close", figures.append)  # keep the figures to inspect
    make_report(tmp_path)
    losses, mixture, rewards = figures
    assert "my-run" in losses._suptitle.get_text()
    val_ax = losses.axes[0]
    assert val_ax.get_xscale() == "symlog" and "nats/token" in val_ax.get_ylabel()
    # Steps 0, 2 and 10 land apart on the axis (symlog), not piled up at the left.
    xs = val_ax.transData.transform([[0, 0], [2, 0], [10, 0]])[:, 0]
    assert np.diff(xs).min() > 0.1 * (xs[-1] - xs[0])
    requested = mixture.axes[0]
    (first, *_) = requested.collections  # the bottom band: arm "a"
    top = first.get_paths()[0].vertices
    # Steps, not ramps: arm a holds 0.5 until step 2, 0.9 until 10, 0.2 until the run's end (20).
    assert {(0.0, 0.5), (2.0, 0.5), (2.0, 0.9), (10.0, 0.9), (10.0, 0.2), (20.0, 0.2)} <= {
        (round(float(x), 6), round(float(y), 6)) for x, y in top
    }
    assert requested.get_xlim()[0] == 0
    panels = [ax for ax in rewards.axes if ax.get_visible()]
    assert len(panels) == 2  # one per class: no line hidden under another
    clipped = [line for ax in panels for line in ax.lines if line.get_marker() == "X"]
    assert sorted(float(y) for line in clipped for y in line.get_ydata()) == [-1.0, 1.0]
    assert "clipped" in rewards._suptitle.get_text()
