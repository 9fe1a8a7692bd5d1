"""Faults: signals, SIGKILL, non-finite steps, damaged and mismatched checkpoints."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.errors import BirdieError
from birdie_ssm.train.loading import load_run
from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.conftest import TINY, tiny_config

SETTINGS = [*TINY, "train.keep_checkpoints=3"]


def _cli(run_dir: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "birdie_ssm.cli", "train", "--run-dir", str(run_dir), *extra]
    for s in SETTINGS:
        args += ["--set", s]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, step: int) -> None:
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / str(step) / "commit_success.txt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.01)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in process."""
    run_dir = tmp_path_factory.mktemp("reference")
    trainer = Trainer(tiny_config("train.keep_checkpoints=3"), run_dir)
    trainer.fit()
    trainer.close()
    return run_dir, trainer.params


def _same_params(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _records(run_dir: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in ("tokens_per_s", "mfu")}  # timings differ
        for r in read_metrics(run_dir / "metrics.jsonl")
    ]


def test_sigkill_then_sigterm_then_resume_matches_uninterrupted(reference, tmp_path):
    ref_dir, ref_params = reference
    run_dir = tmp_path / "run"

    proc = _cli(run_dir)
    _wait_for_checkpoint(run_dir, proc, 10)
    proc.kill()  # SIGKILL: no chance to clean up, maybe in the middle of a write
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    proc = _cli(run_dir, "--resume")
    _wait_for_checkpoint(run_dir, proc, 20)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err

    resumed = Trainer(tiny_config("train.keep_checkpoints=3"), run_dir, resume=True)
    assert resumed.step >= 20
    resumed.fit()
    resumed.close()
    _same_params(resumed.params, ref_params)
    assert _records(run_dir) == _records(ref_dir)


def test_nonfinite_steps_are_skipped_then_stop(tmp_path):
    trainer = Trainer(tiny_config("train.max_nonfinite=3"), tmp_path / "run")
    poisoned = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), trainer.params)
    trainer.params = poisoned
    with pytest.raises(BirdieError, match="3 steps in a row"):
        trainer.fit()
    assert trainer.nonfinite_total == 3
    leaves = jax.tree.leaves(trainer.params)
    assert all(bool(jnp.isnan(x).all()) for x in leaves)  # the updates were skipped
    trainer.close()


def test_one_nonfinite_step_leaves_state_unchanged(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path / "run")
    first = jax.tree.leaves(trainer.params)[0]
    bad = jax.tree.map(lambda p: p, trainer.params)
    leaves, treedef = jax.tree.flatten(bad)
    leaves[0] = first.at[(0,) * first.ndim].set(jnp.inf)
    bad = jax.tree.unflatten(treedef, leaves)
    before = [np.asarray(x) for x in jax.tree.leaves(bad)]
    trainer.params = bad
    metrics = trainer.train_one()
    assert not bool(metrics["finite"])
    for x, y in zip(before, jax.tree.leaves(trainer.params), strict=True):
        np.testing.assert_array_equal(x, np.asarray(y))
    trainer.close()


def test_mismatched_checkpoint_is_refused(reference, tmp_path):
    ref_dir, _ = reference
    with pytest.raises(BirdieError, match=r"model.width: checkpoint 32, config 48"):
        Trainer(tiny_config("model.width=48"), ref_dir, resume=True)


def test_damaged_checkpoint_is_refused(reference, tmp_path):
    ref_dir, _ = reference
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    state_dir = copy / "checkpoints" / "30" / "state"
    for path in state_dir.rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(BirdieError, match="damaged or incomplete"):
        load_run(copy)


def test_interrupted_write_leaves_previous_checkpoint(reference, tmp_path):
    ref_dir, ref_params = reference
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    # What a crash in the middle of writing step 40 leaves behind: an uncommitted temporary dir.
    tmp = copy / "checkpoints" / "40.orbax-checkpoint-tmp-1234"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "half").write_bytes(b"\0" * 10)
    run = load_run(copy)
    assert run.step == 30
    _same_params(nnx.split(run.model)[1], ref_params)
