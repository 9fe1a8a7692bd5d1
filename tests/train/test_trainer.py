import shutil

import jax
import numpy as np
import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.optim import decay_start, learning_rate
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

RATES = {"tokens_per_s", "mfu"}  # timings: differ between runs

# A plug-in objective from a test module takes part like a built-in one.
SETTINGS = (
    "train.keep_checkpoints=3",
    "objectives.modules=[tests.objectives.custom_objective]",
    "objectives.mixture.3={name: test_reverse, params: {length: 12}}",
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run of 30 steps (checkpoints at 10, 20, 30), trained once for the whole module."""
    run_dir = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_config(*SETTINGS), run_dir)
    final = trainer.fit()
    trainer.close()
    return run_dir, trainer, final


def test_loss_decreases(finished_run):
    run_dir, _, final = finished_run
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    start = evals[0]["val_loss"]
    assert evals[0]["step"] == 0
    for arm, loss in final.items():
        assert loss < start[arm] - 0.5, (arm, start[arm], loss)
    train = [r for r in records if r["kind"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"]
    assert all(r["tokens_per_s"] > 0 for r in train)


def test_run_dir_layout(finished_run):
    run_dir, trainer, _ = finished_run
    assert (run_dir / "config.yaml").is_file()
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()) == [10, 20, 30]
    assert set(trainer.arm_names) == {
        "next_token",
        "prefix_lm",
        "infilling[mask_rate=0.15]",
        "infilling[mask_rate=0.5]",
        "test_reverse",
    }


def test_resume_reproduces_the_uninterrupted_run(finished_run, tmp_path):
    run_dir, done, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for step in ("20", "30"):  # as if killed just after the checkpoint at step 10
        shutil.rmtree(copy / "checkpoints" / step)
    resumed = Trainer(tiny_config(*SETTINGS), copy, resume=True)
    assert resumed.step == 10
    resumed.fit()
    resumed.close()
    for a, b in zip(jax.tree.leaves(done.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    strip = lambda rs: [{k: v for k, v in r.items() if k not in RATES} for r in rs]  # noqa: E731
    assert strip(read_metrics(copy / "metrics.jsonl")) == strip(
        read_metrics(run_dir / "metrics.jsonl")
    )


def test_checkpoint_restore_round_trip(finished_run, tmp_path):
    run_dir, done, _ = finished_run
    fresh = Trainer(tiny_config(*SETTINGS), tmp_path / "other")
    fresh.checkpointer = done.checkpointer
    fresh.restore(20)
    assert fresh.step == 20
    restored = jax.tree.leaves(fresh.params)
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(done.params), restored, strict=True)
    )  # step 20 differs from the final step 30
    fresh.restore(30)
    for a, b in zip(jax.tree.leaves(done.params), jax.tree.leaves(fresh.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_metrics_carry_the_realised_mixture(finished_run):
    run_dir, trainer, _ = finished_run
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals[0]["realised_mixture"] is None  # nothing trained before step 0
    for r in evals[1:]:
        assert set(r["realised_mixture"]) == set(trainer.arm_names)
        assert sum(r["realised_mixture"].values()) == pytest.approx(1.0, abs=1e-5)
        assert set(r["requested_mixture"]) == set(trainer.arm_names)
    for r in (r for r in records if r["kind"] == "train"):
        assert sum(r["realised_mixture"].values()) == pytest.approx(1.0, abs=1e-5)


def _target_tokens(batch, arms: int) -> np.ndarray:
    """Target tokens per arm, counted from each packed example's layout: a segment's positions
    past its prefix (input + separator) are its target and end-of-document token."""
    counts = np.zeros(arms, dtype=np.int64)
    for segments, prefix, arm_ids in zip(
        batch.segment_ids, batch.prefix_mask, batch.arm_ids, strict=True
    ):
        for segment in set(segments[segments > 0].tolist()):
            where = segments == segment
            counts[arm_ids[where][0]] += int((where & ~prefix).sum())
    return counts


def test_the_controller_is_credited_with_the_realised_mixture(tmp_path):
    trainer = Trainer(tiny_config("controller.name=ucb"), tmp_path / "run")
    batches, given = [], []
    next_batch, update = trainer.birdie.pipeline.next_batch, trainer.birdie.controller.update

    def spy_batch():
        batches.append(next_batch())
        return batches[-1]

    def spy_update(step, losses, played=None):
        given.append(played)
        return update(step, losses, played=played)

    trainer.birdie.pipeline.next_batch, trainer.birdie.controller.update = spy_batch, spy_update
    requested = trainer.mixture.copy()
    try:
        for _ in range(6):
            trainer.train_one()
        trainer.evaluate_and_adapt()
        assert trainer.realised_mixture() is None  # a new interval starts at each evaluation
    finally:
        trainer.close()
    n = len(trainer.arm_names)
    tokens = sum(_target_tokens(b, n) for b in batches)
    assert tokens.sum() > 0 and (tokens > 0).sum() > 1
    np.testing.assert_allclose(given[-1], tokens / tokens.sum())
    assert not np.allclose(given[-1], requested, atol=1e-3)  # realised, not what was asked
    record = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    np.testing.assert_allclose(list(record["realised_mixture"].values()), given[-1], atol=1e-6)


def test_readers_of_trainer_run_see_the_live_train_state(finished_run, tmp_path):
    """One train state: ``trainer.run`` holds it (never a donated array), saved and restored
    as a unit."""
    run_dir, done, _ = finished_run
    leaves = jax.tree.leaves(done.run.params) + jax.tree.leaves(done.run.opt_state)
    assert not any(x.is_deleted() for x in leaves)  # donated at step 1 when copied
    assert done.state["params"] is done.run.params and done.params is done.run.params
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    resumed = Trainer(tiny_config(*SETTINGS), copy, resume=True)
    resumed.close()
    # The optimizer state (update count, moments) comes back with the params.
    for a, b in zip(jax.tree.leaves(done.state), jax.tree.leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_resumed_run_cannot_go_below_its_step(finished_run, tmp_path):
    run_dir, _, _ = finished_run
    with pytest.raises(BirdieError, match=r"train.steps 20 is below step 30.*>= 30"):
        Trainer(tiny_config(*SETTINGS, "train.steps=20"), run_dir, resume=True)


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_extending_a_cosine_run_would_rewarm_it_so_it_is_refused(finished_run, tmp_path):
    run_dir, _, _ = finished_run
    longer = tiny_config(*SETTINGS, "train.steps=60")
    with pytest.raises(BirdieError) as error:
        Trainer(longer, run_dir, resume=True)
    message = str(error.value)
    assert "train.steps 30 -> 60 would move the learning rate at step 30" in message
    assert "train.schedule=wsd" in message and "--allow-lr-change" in message
    trainer = Trainer(longer, run_dir, resume=True, allow_lr_change=True)
    trainer.close()
    before, after = trainer.lr_change
    assert before == pytest.approx(0.003 * 0.1) and after > 3 * before  # the jump it would make


def test_wsd_schedule_holds_then_decays_and_lengthens_without_a_jump():
    config = tiny_config("train.schedule=wsd", "train.steps=100", "train.warmup_steps=10",
                         "train.decay_fraction=0.2").train  # fmt: skip
    lr = learning_rate(config)
    peak, end = config.lr, config.lr * config.min_lr_ratio
    assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(peak / 2)
    assert [float(lr(s)) for s in (10, 50, 80)] == pytest.approx([peak] * 3)
    decay = np.array([float(lr(s)) for s in range(80, 101)])
    assert np.all(np.diff(decay) < 0) and decay[-1] == pytest.approx(end)
    assert decay_start(config) == 80
    longer = learning_rate(config.model_copy(update={"steps": 200}))
    np.testing.assert_array_equal([lr(s) for s in range(81)], [longer(s) for s in range(81)])


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_a_wsd_run_extends_from_its_stable_phase_not_from_its_decay(tmp_path):
    settings = ("train.schedule=wsd", "train.decay_fraction=0.5", "train.steps=20",
                "train.keep_checkpoints=3")  # fmt: skip
    trainer = Trainer(tiny_config(*settings), tmp_path / "run")
    trainer.fit()
    trainer.close()
    longer = tiny_config(*settings, "train.steps=80")
    with pytest.raises(BirdieError, match=r"step 20 is in the decay .*from step 10.*--resume-from"):
        Trainer(longer, tmp_path / "run", resume=True)
    extended = Trainer(longer, tmp_path / "run", resume=True, resume_step=10)
    extended.close()
    assert extended.step == 10 and extended.lr_change is None
    assert extended.removed_checkpoints == [20]
    assert float(extended.run.lr(10)) == pytest.approx(0.003)  # still the stable phase


def test_resuming_a_finished_run_says_there_is_nothing_to_do(finished_run, tmp_path, capsys):
    from birdie_ssm.cli import main

    copy = tmp_path / "run"
    shutil.copytree(finished_run[0], copy)
    before = (copy / "metrics.jsonl").read_text()
    assert main(["train", "--run-dir", str(copy), "--resume", "--set", "train.progress=true"]) == 0
    out = capsys.readouterr()
    assert "already trained to step 30 (train.steps 30): nothing to do" in out.out
    assert "trained to step 30 in" not in out.out and "step/s" not in out.err
    assert (copy / "metrics.jsonl").read_text() == before


def test_progress_off_a_terminal_is_one_line_per_log_record(finished_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(finished_run[0], copy)
    config = tiny_config(*SETTINGS, "train.progress=true")
    trainer = Trainer(config, copy, resume=True, resume_step=10)
    trainer.fit()
    trainer.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["15/30", "20/30", "25/30", "30/30"]
    assert all("loss" in line and "mix" in line for line in lines)
