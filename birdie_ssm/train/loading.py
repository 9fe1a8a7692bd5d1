"""Loading a trained model (and what it needs to read and write text) from a run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from birdie_ssm.config import Config, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model
from birdie_ssm.text import Tokenizer, make_tokenizer, padded_vocab_size
from birdie_ssm.train.checkpoint import Checkpointer
from birdie_ssm.train.optim import make_optimizer


@dataclass
class TrainedRun:
    """A model restored from a checkpoint, with its config, tokenizer and checkpoint metadata."""

    model: Any
    config: Config
    tokenizer: Tokenizer
    step: int
    meta: dict[str, Any]


def load_run(run_dir: str | Path, step: int | None = None) -> TrainedRun:
    """Rebuild the model of ``run_dir`` and restore its parameters (latest checkpoint by default)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise BirdieError(f"'{run_dir}' is not a run directory (no config.yaml)")
    if not (run_dir / "checkpoints").is_dir():
        raise BirdieError(f"'{run_dir}' holds no checkpoints")
    config = load_config(run_dir / "config.yaml")
    tokenizer = make_tokenizer(config.data)
    vocab = config.model.vocab_size or padded_vocab_size(tokenizer)
    model = build_model(config.model, vocab, nnx.Rngs(config.train.seed))
    graphdef, params = nnx.split(model)
    # Abstract optimizer state: the restore target without allocating it.
    opt_state = jax.eval_shape(make_optimizer(config.train).init, params)
    checkpointer = Checkpointer(run_dir, config.train.keep_checkpoints)
    try:
        state, meta = checkpointer.restore({"params": params, "opt_state": opt_state}, step)
    finally:
        checkpointer.close()
    return TrainedRun(
        nnx.merge(graphdef, state["params"]), config, tokenizer, int(meta["step"]), meta
    )
