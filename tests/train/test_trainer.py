import shutil

import jax
import numpy as np
import pytest

from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.conftest import tiny_config

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


def test_the_controller_is_credited_with_the_realised_mixture(tmp_path):
    trainer = Trainer(tiny_config("controller.name=ucb"), tmp_path / "run")
    batches, given = [], []
    next_batch, update = trainer.pipeline.next_batch, trainer.controller.update

    def spy_batch():
        batches.append(next_batch())
        return batches[-1]

    def spy_update(step, losses, played=None):
        given.append(played)
        return update(step, losses, played=played)

    trainer.pipeline.next_batch, trainer.controller.update = spy_batch, spy_update
    try:
        for _ in range(6):
            trainer.train_one()
        trainer.evaluate_and_adapt()
    finally:
        trainer.close()
    n = len(trainer.arm_names)
    tokens = sum(np.bincount(b.arm_ids[b.loss_mask], minlength=n) for b in batches)
    np.testing.assert_allclose(given[-1], tokens / tokens.sum())
    record = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    np.testing.assert_allclose(list(record["realised_mixture"].values()), given[-1], atol=1e-6)
    assert trainer.realised_mixture() is None  # a new interval starts at each evaluation
