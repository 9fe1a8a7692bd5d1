"""Assembly of a run: every part a config describes, built in one place.

``build_run(config)`` returns a ``Run``: tokenizer, corpus, arms, model parameters and optimizer
state (sharded over the mesh), the jitted steps, the controller, the training pipeline and the
validation set. The ``Trainer`` only drives it; ``train.loading.load_run`` builds the tokenizer
and the model with the same functions (``build_tokenizer``, ``build_model_for``), so a model is
built one way. Imports run one way: loading imports build, never the reverse.
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

from birdie_ssm.config import Config, ModelConfig
from birdie_ssm.curriculum import Controller, make_controller
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model, count_params
from birdie_ssm.objectives import expand_arms
from birdie_ssm.objectives.arms import Arm
from birdie_ssm.pipeline import BatchSource, open_pipeline, token_corpus, validation_batches
from birdie_ssm.plugins import import_module
from birdie_ssm.text import Tokenizer, make_tokenizer, padded_vocab_size
from birdie_ssm.text.corpus import DocumentSource, make_source
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
    source: DocumentSource
    arms: list[Arm]
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
    controller: Controller
    pipeline: BatchSource
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
    return make_tokenizer(config.data, run_dir)


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


def build_controller(config: Config, arms: list[Arm]) -> Controller:
    """The configured controller (plug-in modules imported first); it is told the configured
    mixture and decides itself what to make of it."""
    for name in config.controller.modules:
        import_module(name, what="controller.modules")
    if "reward" in config.controller.params:
        raise BirdieError(
            "controller.params.reward: the reward is set by controller.reward (birdie or relative)"
        )
    return make_controller(
        config.controller.name,
        [a.name for a in arms],
        [a.objective_class for a in arms],
        mixture=[a.weight for a in arms],
        reward=config.controller.reward,
        **config.controller.params,
    )


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


def build_run(config: Config, *, init_from: TrainedRun | None = None) -> Run:
    """Assemble every part of a run of ``config``; ``init_from``: start from another run's
    parameters (fine-tuning, ``train.loading.load_run``) instead of fresh ones."""
    if config.train.distributed:
        init_distributed()
    data = config.data
    mesh = make_mesh(config.train)
    check_batch(data.batch_size, mesh)
    tokenizer = build_tokenizer(config)
    source = make_source(data)
    arms = expand_arms(
        config.objectives.mixture, tokenizer.specials, config.objectives.modules, tokenizer
    )

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
    train_step = make_train_step(graphdef, optimizer, len(arms), (param_shardings, opt_shardings))

    controller = build_controller(config, arms)
    mixture = np.asarray(controller.initial_mixture(), dtype=np.float64)
    # Every host runs the same streams and is served its own rows of each global batch.
    hosts = dict(process_index=jax.process_index(), process_count=jax.process_count())
    corpus = token_corpus(data, source, tokenizer)  # file sources: the token cache, built once
    pipeline = open_pipeline(config, corpus, tokenizer, arms, mixture, **hosts)
    val_sets = validation_batches(
        corpus,
        tokenizer,
        arms,
        seq_len=data.seq_len,
        batch_size=data.batch_size,
        batches_per_arm=data.val_batches_per_arm,
        seed=data.seed + 1,
        **hosts,
    )
    sharding = batch_sharding(mesh)
    # The held-out set never changes: place it on the devices once, not at every evaluation.
    val_arrays = [[global_batch(b.as_dict(), sharding) for b in batches] for batches in val_sets]
    return Run(
        config=config,
        mesh=mesh,
        tokenizer=tokenizer,
        source=source,
        arms=arms,
        vocab_size=vocab_size_for(config, tokenizer),
        graphdef=graphdef,
        params=params,
        opt_state=opt_state,
        num_params=num_params,
        optimizer=optimizer,
        lr=learning_rate(config.train),
        batch_sharding=sharding,
        train_step=train_step,
        eval_step=make_eval_step(graphdef, len(arms)),
        controller=controller,
        pipeline=pipeline,
        val_arrays=val_arrays,
    )
