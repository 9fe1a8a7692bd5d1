"""Per-step host overheads of the trainer: no wait on the device before the next step is sent,
no array the model never reads sent with the batch."""

from __future__ import annotations

import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    trainer = Trainer(tiny_config("train.steps=4"), tmp_path_factory.mktemp("run"))
    yield trainer
    trainer.close()


class _Flag:
    """Stands for a step's device ``finite`` flag; records when the host reads it."""

    def __init__(self, events: list[str], value: bool) -> None:
        self.events, self.value = events, value

    def __bool__(self) -> bool:
        self.events.append("read previous flag")
        return self.value


def test_previous_step_flag_is_read_after_the_next_step_is_sent(trainer, monkeypatch):
    events: list[str] = []
    step = trainer.run.train_step

    def recording_step(params, opt_state, batch):
        events.append("send step")
        return step(params, opt_state, batch)

    monkeypatch.setattr(trainer.run, "train_step", recording_step)
    trainer._pending_finite = _Flag(events, True)
    trainer.train_one()
    assert events == ["send step", "read previous flag"]


def test_a_late_read_still_counts_and_stops(trainer, monkeypatch):
    monkeypatch.setattr(trainer.config.train, "max_nonfinite", 2)
    trainer.nonfinite_streak, total = 1, trainer.nonfinite_total
    trainer._pending_finite = _Flag([], False)
    start = trainer.step
    with pytest.raises(BirdieError, match=rf"2 steps in a row \(up to step {start}\)"):
        trainer.train_one()
    assert trainer.nonfinite_total == total + 1
    trainer.nonfinite_streak = 0


def test_positions_stay_on_the_host(trainer, monkeypatch):
    sent: list[set[str]] = []
    step = trainer.run.train_step

    def recording_step(params, opt_state, batch):
        sent.append(set(batch))
        return step(params, opt_state, batch)

    monkeypatch.setattr(trainer.run, "train_step", recording_step)
    trainer.train_one()
    assert sent and "positions" not in sent[0]
    assert {"input_ids", "target_ids", "loss_mask", "segment_ids", "prefix_mask"} <= sent[0]
    # The host batch still carries them (packing tests and tools read them).
    assert hasattr(trainer.birdie.next_batch(), "positions")
