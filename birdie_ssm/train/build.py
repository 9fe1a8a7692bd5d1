"""Assembly of a run: every part a config describes, built in one place.

``build_run(config)`` returns a ``Run``: tokenizer, model parameters and optimizer state (sharded
over the mesh), the jitted steps, and the ``Birdie`` that serves the batches, the validation set
and the controller's mixtures. The ``Trainer`` only drives it; ``train.loading.load_run`` builds
the tokenizer and the model with the same functions (``build_tokenizer``, ``build_model_for``),
so a model is built one way. Imports run one way: loading imports build, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from birdie_ssm.birdie import Birdie
from birdie_ssm.config import Config, ModelConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model, count_params
from birdie_ssm.pipeline import available_host_bytes
from birdie_ssm.text import Tokenizer, make_tokenizer, padded_vocab_size
from birdie_ssm.train import rundir
from birdie_ssm.train.optim import learning_rate, make_optimizer
from birdie_ssm.train.sharding import (
    batch_sharding,
    check_batch,
    global_batch,
    make_mesh,
    state_shardings,
)
from birdie_ssm.train.steps import make_eval_step, make_train_step


@dataclass
class TrainedRun:
    """A model restored from a checkpoint, with its config, tokenizer and checkpoint metadata
    (what ``train.loading.load_run`` returns, and what ``build_run(init_from=)`` starts from)."""

    model: Any
    config: Config
    tokenizer: Tokenizer
    step: int
    meta: dict[str, Any]
    run_dir: Path | None = None


@dataclass
class Run:
    """The assembled parts of a training run (what ``Trainer`` drives)."""

    config: Config
    mesh: Mesh
    tokenizer: Tokenizer
    vocab_size: int
    graphdef: nnx.GraphDef
    params: Any  # nnx.State, sharded
    opt_state: Any  # sharded
    num_params: int
    optimizer: optax.GradientTransformation
    lr: optax.Schedule
    batch_sharding: NamedSharding
    train_step: Any  # (params, opt_state, batch) -> (params, opt_state, metrics)
    eval_step: Any  # (params, batch) -> (loss sums, token counts) per arm
    birdie: Birdie  # batches, the evaluation schedule, the controller
    val_arrays: list[list[dict[str, jax.Array]]]  # per arm: device-placed held-out batches


def init_distributed() -> None:
    """Join the multi-host job (coordinator and process ids from the environment), once.

    A caller that already called ``jax.distributed.initialize`` itself (e.g. with an explicit
    coordinator) is left as it is.
    """
    if jax.distributed.is_initialized():
        return
    try:
        jax.distributed.initialize()
    except (RuntimeError, ValueError) as exc:
        raise BirdieError(f"train.distributed: could not join the job: {exc}") from None


def build_tokenizer(config: Config, run_dir: Path | None = None) -> Tokenizer:
    """The run's tokenizer (from ``run_dir``'s saved copy of its files, when given and saved)."""
    return make_tokenizer(config.data, None if run_dir is None else rundir.tokenizer_dir(run_dir))


def vocab_size_for(config: Config, tokenizer: Tokenizer) -> int:
    """The model's vocabulary: ``model.vocab_size``, or the tokenizer's padded to a multiple."""
    vocab = config.model.vocab_size or padded_vocab_size(tokenizer)
    if vocab < tokenizer.vocab_size:
        raise BirdieError(
            f"model.vocab_size {vocab} is smaller than the tokenizer's {tokenizer.vocab_size}"
        )
    return vocab


def build_model_for(config: Config, tokenizer: Tokenizer) -> nnx.Module:
    """The model of ``config`` (fresh parameters from ``train.seed``) for ``tokenizer``."""
    return build_model(config.model, vocab_size_for(config, tokenizer), nnx.Rngs(config.train.seed))


def _initial_params(params: Any, other: TrainedRun, model: ModelConfig) -> Any:
    """The parameters of another run (fine-tuning); its architecture must match ``params``."""
    _, theirs = nnx.split(other.model)
    shapes = lambda tree: [x.shape for x in jax.tree.leaves(tree)]  # noqa: E731
    if jax.tree.structure(params) != jax.tree.structure(theirs) or shapes(params) != shapes(theirs):
        mine, its = model.model_dump(), other.config.model.model_dump()
        differ = "; ".join(
            f"model.{key}: {its[key]!r} there, {mine[key]!r} here"
            for key in mine
            if mine[key] != its.get(key)
        )
        differ = differ or "the model settings agree; the vocabularies differ"
        raise BirdieError(
            f"--init-from '{other.run_dir}': its model does not match this config's ({differ}); "
            "use the same model section"
        )
    return theirs


def sum_over_hosts(values: np.ndarray) -> np.ndarray:
    """``values`` summed over every host of the job (Birdie's ``all_reduce``)."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values)).sum(axis=0)


def check_device_memory(model: ModelConfig, vocab_size: int, devices: list[jax.Device]) -> None:
    """Refuse, in one line, a model whose parameters, gradients and Adam moments alone do not
    fit the devices (sharded over all of them at best; no batch size or sequence length would
    make it fit)."""
    shapes = jax.eval_shape(lambda: nnx.split(build_model(model, vocab_size, nnx.Rngs(0)))[1])
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    need = 4 * 4 * count  # float32 parameters, gradients and two Adam moments
    if devices[0].platform == "cpu":  # CPU devices share the host's memory
        limit = available_host_bytes()
    else:
        limit = (devices[0].memory_stats() or {}).get("bytes_limit")
        limit = None if limit is None else limit * len(devices)
    if limit is not None and need > limit:
        raise BirdieError(
            f"the model's {count / 1e9:.2f} B parameters need about {need / 2**30:.1f} GiB with "
            f"their gradients and optimizer state, more than the {limit / 2**30:.1f} GiB of "
            f"{devices[0].platform} memory: lower model.width ({model.width}) or model.depth "
            f"({model.depth})"
        )


def build_run(config: Config, *, init_from: TrainedRun | None = None) -> Run:
    """Assemble every part of a run of ``config``; ``init_from``: start from another run's
    parameters (fine-tuning, ``train.loading.load_run``) instead of fresh ones."""
    if config.train.distributed:
        init_distributed()
    data, accum = config.data, config.train.grad_accum
    mesh = make_mesh(config.train)
    if data.batch_size % accum:
        raise BirdieError(
            f"train.grad_accum {accum} must divide data.batch_size {data.batch_size} (the global "
            "batch is split into that many micro-batches)"
        )
    check_batch(data.batch_size // accum, mesh)
    tokenizer = build_tokenizer(config)

    check_device_memory(config.model, vocab_size_for(config, tokenizer), jax.devices())
    model = build_model_for(config, tokenizer)
    num_params = count_params(model)
    graphdef, params = nnx.split(model)
    if init_from is not None:
        params = _initial_params(params, init_from, config.model)
    optimizer = make_optimizer(config.train)
    param_shardings = state_shardings(params, mesh)
    opt_shardings = state_shardings(jax.eval_shape(optimizer.init, params), mesh)
    params = jax.device_put(params, param_shardings)
    opt_state = jax.jit(optimizer.init, out_shardings=opt_shardings)(params)

    # Every host runs the same streams and is served its own rows of each global batch.
    hosts = jax.process_count()
    birdie = Birdie.from_config(
        config,
        tokenizer=tokenizer,
        rank=jax.process_index(),
        world_size=hosts,
        all_reduce=sum_over_hosts if hosts > 1 else None,
    )
    try:
        num_arms = len(birdie.arms)
        train_step = make_train_step(
            graphdef, optimizer, num_arms, (param_shardings, opt_shardings), grad_accum=accum
        )
        sharding = batch_sharding(mesh)
        # The held-out set never changes: place it on the devices once, not at every evaluation.
        val_arrays = [
            [global_batch(b.as_dict(), sharding) for b in batches]
            for batches in birdie.validation_batches().values()
        ]
    except BaseException:
        birdie.close()
        raise
    return Run(
        config=config,
        mesh=mesh,
        tokenizer=tokenizer,
        vocab_size=vocab_size_for(config, tokenizer),
        graphdef=graphdef,
        params=params,
        opt_state=opt_state,
        num_params=num_params,
        optimizer=optimizer,
        lr=learning_rate(config.train),
        batch_sharding=sharding,
        train_step=train_step,
        eval_step=make_eval_step(graphdef, num_arms),
        birdie=birdie,
        val_arrays=val_arrays,
    )
