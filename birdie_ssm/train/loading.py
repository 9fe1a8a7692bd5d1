"""Loading a trained model (and what it needs to read and write text) from a run directory."""

from __future__ import annotations

from pathlib import Path

import jax
from flax import nnx

from birdie_ssm.errors import BirdieError
from birdie_ssm.train import rundir
from birdie_ssm.train.build import TrainedRun, build_model_for, build_tokenizer
from birdie_ssm.train.checkpoint import Checkpointer
from birdie_ssm.train.export import load_export
from birdie_ssm.train.optim import make_optimizer

__all__ = ["TrainedRun", "load_run"]


def load_run(run_dir: str | Path, step: int | None = None) -> TrainedRun:
    """Rebuild the model of ``run_dir`` and restore its parameters (latest checkpoint by default).

    The tokenizer and the model are built as ``train.build`` builds them for training.
    ``run_dir`` may also be an export directory (``train.export``), which has one step.
    """
    run_dir = Path(run_dir)
    if rundir.is_export(run_dir):
        run = load_export(run_dir)
        if step is not None and step != run.step:
            raise BirdieError(f"'{run_dir}' is an export of step {run.step}, not of step {step}")
        return run
    if not rundir.config_path(run_dir).is_file():
        raise BirdieError(f"'{run_dir}' is not a run directory (no config.yaml)")
    if not rundir.checkpoints_dir(run_dir).is_dir():
        raise BirdieError(f"'{run_dir}' holds no checkpoints")
    config = rundir.read_config(run_dir)
    tokenizer = build_tokenizer(config, run_dir)
    graphdef, params = nnx.split(build_model_for(config, tokenizer))
    # Abstract optimizer state: the restore target without allocating it.
    opt_state = jax.eval_shape(make_optimizer(config.train).init, params)
    checkpointer = Checkpointer(run_dir, config.train.keep_checkpoints)
    try:
        state, meta = checkpointer.restore({"params": params, "opt_state": opt_state}, step)
    finally:
        checkpointer.close()
    model = nnx.merge(graphdef, state["params"])
    return TrainedRun(model, config, tokenizer, int(meta["step"]), meta, run_dir)
