"""train.loggers: metrics.jsonl always, TensorBoard and W&B (offline) mirrors, clear errors."""

from __future__ import annotations

import struct
import time

import pytest

from birdie_ssm.config import load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.train import loggers
from birdie_ssm.train.metrics import MetricsLog, read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

ARMS = {"next_token": 0.5, "copying": 0.5}
RECORDS = [
    {"kind": "eval", "step": 0, "val_loss": {"next_token": 5.0, "copying": float("nan")},
     "mixture": ARMS, "controller": {"step": 0}},
    {"kind": "train", "step": 5, "loss": 4.5, "lr": 1e-3, "tokens_per_s": 900.0, "mfu": 0.25,
     "mixture": ARMS, "realised_mixture": {"next_token": 0.6, "copying": 0.4}},
    {"kind": "eval", "step": 5, "val_loss": {"next_token": 4.4, "copying": 4.9}, "mixture": ARMS,
     "controller": {"step": 5, "reward": 0.5, "class_rewards": {"next_token": 1.0, "copying": 0.0},
                    "scores": [1.0, 2.0]}},
]  # fmt: skip


def read_events(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Scalars of every TensorBoard event file under ``run_dir`` (TFRecord framing, no TF)."""
    from tensorboardX.proto import event_pb2

    series: dict[str, list[tuple[int, float]]] = {}
    files = sorted(run_dir.rglob("events.out.tfevents.*"))
    assert files, "no TensorBoard event file written"
    for path in files:
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4  # length, its crc, the event, its crc
            for value in event.summary.value:
                series.setdefault(value.tag, []).append((event.step, value.simple_value))
    return series


def test_scalars_group_fields_where_people_look():
    tags = loggers.scalars(RECORDS[1]) | loggers.scalars(RECORDS[2])
    assert tags["loss/train"] == 4.5
    assert tags["throughput/mfu"] == 0.25
    assert tags["throughput/tokens_per_s"] == 900.0
    assert tags["optim/lr"] == 1e-3
    assert tags["mixture/requested/next_token"] == 0.5
    assert tags["mixture/realised/copying"] == 0.4
    assert tags["loss/val/copying"] == 4.9
    assert tags["reward/class/next_token"] == 1.0
    assert tags["reward/total"] == 0.5
    assert tags["eval/controller/step"] == 5
    assert not any("scores" in t for t in tags)  # lists are no scalar series
    assert "loss/val/copying" not in loggers.scalars(RECORDS[0])  # NaN is skipped


def test_jsonl_is_always_written_and_listed():
    assert load_config(None, []).train.loggers == ["jsonl"]
    assert load_config(None, ["train.loggers=[tensorboard]"]).train.loggers == [
        "jsonl",
        "tensorboard",
    ]


def test_unknown_logger_is_a_config_error():
    with pytest.raises(BirdieError, match="unknown logger 'tb' \\(registered: jsonl, tensorboard"):
        load_config(None, ["train.loggers=[tb]"])


def test_missing_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    for name, extra in (("tensorboard", "tensorboard"), ("wandb", "wandb")):
        with pytest.raises(BirdieError, match=rf"pip install 'birdie-ssm\[{extra}\]'") as err:
            MetricsLog(tmp_path / "metrics.jsonl", ["jsonl", name])
        assert "\n" not in str(err.value)


def test_a_registered_logger_receives_every_record(tmp_path):
    seen = []

    class Recorder:
        def __init__(self, context):
            self.context = context

        def log(self, step, record):
            seen.append((step, record["kind"], self.context.resume_step))

        def close(self):
            seen.append("closed")

    loggers.register_logger("test_recorder")(Recorder)
    try:
        log = MetricsLog(tmp_path / "metrics.jsonl", ["test_recorder"])
        for record in RECORDS:
            log.write(record)
        log.close()
    finally:
        del loggers.LOGGERS["test_recorder"]
    assert seen == [(0, "eval", None), (5, "train", None), (5, "eval", None), "closed"]
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["kind"] for r in records] == ["eval", "train", "eval"]
    assert records[0]["val_loss"]["copying"] is None  # NaN written as null


def test_tensorboard_event_file_is_written_and_readable(tmp_path):
    pytest.importorskip("tensorboardX")
    log = MetricsLog(tmp_path / "metrics.jsonl", ["jsonl", "tensorboard"])
    for record in RECORDS:
        log.write(record)
    log.close()
    series = read_events(tmp_path / "tensorboard")
    assert series["loss/train"] == [(5, 4.5)]
    assert series["loss/val/next_token"] == [(0, 5.0), (5, pytest.approx(4.4))]
    assert series["throughput/mfu"] == [(5, 0.25)]
    assert series["mixture/realised/next_token"] == [(5, pytest.approx(0.6))]
    assert series["reward/class/next_token"] == [(5, 1.0)]


def test_tiny_run_logs_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboardX")
    # train.steps=4, as in other modules' tiny runs: the session's compilation cache has the step
    config = tiny_config("train.steps=4", "train.log_every=2", "train.loggers=[tensorboard]")
    trainer = Trainer(config, tmp_path)
    trainer.fit()
    trainer.close()
    series = read_events(tmp_path / "tensorboard")
    assert [step for step, _ in series["loss/train"]] == [2, 4]
    assert {"throughput/mfu", "throughput/tokens_per_s", "optim/lr"} <= series.keys()
    # TensorBoard spells "infilling[mask_rate=0.5]" as "infilling_mask_rate_0.5_": count them.
    for group in ("mixture/requested/", "mixture/realised/", "loss/val/"):
        assert len([t for t in series if t.startswith(group)]) == len(trainer.arm_names), group
    assert any(tag.startswith("reward/class/") for tag in series)
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert [s[1] for s in series["throughput/mfu"]] == pytest.approx([r["mfu"] for r in train])


def test_wandb_runs_offline_into_the_run_dir(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "home" / var))
    log = MetricsLog(tmp_path / "metrics.jsonl", ["wandb"], tiny_config())
    for record in RECORDS:
        log.write(record)
    log.close()
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    # wandb's own process may still be writing the run's log when finish() returns.
    deadline = time.monotonic() + 60
    while b"throughput/mfu" not in (data := next(run.glob("*.wandb")).read_bytes()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert b"loss/train" in data and b"throughput/mfu" in data
    run_id = (tmp_path / "wandb" / "run_id").read_text()
    assert run.name.endswith(run_id)
