"""Faults: signals, SIGKILL, non-finite steps, damaged and mismatched checkpoints."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.errors import BirdieError
from birdie_ssm.train.loading import load_run
from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.helpers import TINY, tiny_config

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


@pytest.mark.slow  # kills training processes
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


def _garble(checkpoint: Path) -> None:
    """Damage a checkpoint's array data (its metadata stays readable)."""
    for path in checkpoint.glob("state/ocdbt.process_0/d/*"):
        path.write_bytes(b"garbage")


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_resume_from_a_damaged_step_removes_nothing_and_the_printed_command_works(
    reference, tmp_path, capsys
):
    import shlex

    from birdie_ssm.cli import main

    ref_dir, _ = reference
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    _garble(copy / "checkpoints" / "20")
    assert main(["train", "--run-dir", str(copy), "--resume-from", "20"]) == 2
    out, err = capsys.readouterr()
    assert "removed" not in out and err.count("\n") == 1, err
    assert "checkpoint 20" in err and "damaged" in err and "checkpoint 10 is intact" in err
    assert "<" not in err and "pybind" not in err  # no reprs of C++ objects
    assert sorted(int(p.name) for p in (copy / "checkpoints").iterdir()) == [10, 20, 30]
    # The suggested command, pasted as printed, continues the run from 10.
    command = shlex.split(err.split("`")[1])
    assert command[:2] == ["birdie-ssm", "train"] and "--run-dir" in command
    assert main(command[1:]) == 0
    out = capsys.readouterr().out
    assert "removed checkpoints 20, 30 to resume from 10" in out and "trained to step 30" in out


def test_truncated_metadata_names_the_intact_checkpoint(reference, tmp_path):
    ref_dir, _ = reference
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    meta = copy / "checkpoints" / "30" / "meta" / "metadata"
    meta.write_bytes(meta.read_bytes()[:10])
    with pytest.raises(BirdieError, match=r"checkpoint 30 .* damaged.*checkpoint 20 is intact.*"
                       r"--resume-from 20 --run-dir"):  # fmt: skip
        Trainer(tiny_config("train.keep_checkpoints=3"), copy, resume=True)


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_orbax_reads_abandoned_by_a_failed_restore_are_not_reported(
    reference, tmp_path, monkeypatch, caplog
):
    """After a damaged checkpoint, Orbax's unfinished read coroutines would each print
    'Exception ignored in: <coroutine ...>' with a traceback when collected. They are collected
    while the restore's filter is on; the filter comes off with it."""
    import gc
    import logging
    import sys

    from birdie_ssm.train import checkpoint

    ref_dir, _ = reference
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    _garble(copy / "checkpoints" / "30")
    reported = []

    def record(args):
        code = getattr(args.object, "cr_code", None)
        if code is not None:
            reported.append((code.co_filename, code.co_name))

    monkeypatch.setattr(sys, "unraisablehook", record)
    with pytest.raises(BirdieError, match="damaged"):
        load_run(copy)
    gc.collect()
    assert not [r for r in reported if "orbax" in r[0]], reported
    assert sys.unraisablehook is record  # put back after the restore
    source = "async def {}():\n    try:\n        await Pending()\n    finally:\n" \
             "        raise RuntimeError('read abandoned')\n"  # fmt: skip

    class Pending:
        def __await__(self):
            yield

    namespace = {"Pending": Pending}

    def abandon(name, filename):
        exec(compile(source.format(name), filename, "exec"), namespace)
        coroutine = namespace[name]()
        coroutine.send(None)  # suspended mid-read, as Orbax leaves them
        del coroutine
        gc.collect()

    reported.clear()
    with checkpoint._quiet_abandoned_reads():
        abandon("_read_array_index_and_device_put", "/x/orbax/checkpoint/io.py")
        abandon("mine", "/x/my_code.py")
    assert [name for _, name in reported] == ["mine"]  # others' reports still shown
    abandon("_read_array_index_and_device_put", "/x/orbax/checkpoint/io.py")
    assert [name for _, name in reported][-1] == "_read_array_index_and_device_put"  # scoped
    # Orbax's tasks, collected with their exception unread, are reported by asyncio's logger.
    failed = []
    for filename in ("/x/orbax/checkpoint/serialization.py", "/x/my_code.py"):
        exec(compile("def read():\n    raise ValueError('OUT_OF_RANGE')\n", filename, "exec"),
             namespace)  # fmt: skip
        try:
            namespace["read"]()
        except ValueError as exc:
            failed.append(exc)
    with caplog.at_level(logging.ERROR, logger="asyncio"), checkpoint._quiet_abandoned_reads():
        for exc in failed:
            logging.getLogger("asyncio").error(
                "Task exception was never retrieved", exc_info=(type(exc), exc, exc.__traceback__)
            )
        # A task whose coroutine is Orbax's, its error raised outside Orbax (in TensorStore).
        outside = ValueError("OUT_OF_RANGE: Error reading ... in OCDBT database")
        logging.getLogger("asyncio").error(
            "Task exception was never retrieved\nfuture: <Task finished coro=<"
            "_read_array_index_and_device_put() done, defined at /x/orbax/checkpoint/io.py:1>>",
            exc_info=(ValueError, outside, None),
        )
    assert [r.exc_info[1] for r in caplog.records] == failed[1:]


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_resume_cannot_shorten_or_rewarm_a_run_and_leaves_it_as_it_was(reference, tmp_path, capsys):
    from birdie_ssm.cli import main

    ref_dir, _ = reference
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    before = sorted((str(p), p.stat().st_mtime_ns) for p in copy.rglob("*"))
    for steps, expected in (
        (20, "train.steps 20 is below step 30"),
        (60, "train.steps 30 -> 60 would move the learning rate at step 30"),
    ):
        code = main(["train", "--run-dir", str(copy), "--resume", "--set", f"train.steps={steps}"])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and err.count("\n") == 1, err
    assert "--allow-lr-change" in err and "train.schedule=wsd" in err
    assert sorted((str(p), p.stat().st_mtime_ns) for p in copy.rglob("*")) == before


def test_a_reader_thread_finding_orbax_loop_closed_is_not_reported(monkeypatch):
    """During a restore, Orbax's reader threads may report 'Event loop is closed' with no owner;
    that is dropped, other ownerless reports are not."""
    from birdie_ssm.train import checkpoint

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: seen.append(args.exc_value))
    closed, other = RuntimeError("Event loop is closed"), RuntimeError("something else")
    with checkpoint._quiet_abandoned_reads():
        for exc in (closed, other):
            sys.unraisablehook(SimpleNamespace(object=None, exc_value=exc, exc_type=type(exc)))
    assert seen == [other]
