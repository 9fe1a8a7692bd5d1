"""Birdie in any training loop: batches from the adaptive objective mixture, when to validate,
and the controller that turns the validation losses a loop reports into the next mixture.

A loop, in JAX, PyTorch or anything that takes NumPy arrays::

    birdie = Birdie.from_config("run.yaml")
    birdie.report(0, validation_losses(model, birdie.validation_batches()))
    for step in range(1, steps + 1):
        train(model, birdie.next_batch())
        if birdie.should_evaluate(step):
            birdie.report(step, validation_losses(model, birdie.validation_batches()))
    birdie.close()

Importing this module imports no JAX, Flax or Optax. ``next_batch()`` returns a ``Batch`` of
``[batch, length]`` NumPy arrays, several examples packed per row:

- ``input_ids`` (int32): the tokens the model reads;
- ``target_ids`` (int32): the token each position predicts (the next one of its example);
- ``loss_mask`` (bool): positions whose prediction counts in the loss;
- ``segment_ids`` (int32): the example a position belongs to, 1, 2, ... per row; 0 = padding;
- ``positions`` (int32): the position within its example, from 0;
- ``prefix_mask`` (bool): the example's input and separator, readable bidirectionally;
- ``arm_ids`` (int32): the arm (index into ``Birdie.arm_names``) of the example; -1 = padding.

``causal_lm_fields`` and ``birdie_rl_fields`` lay a batch out for a Hugging Face causal LM or
for a model written for birdie-rl.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pydantic

from birdie_ssm.config import (
    Config,
    ControllerConfig,
    DataConfig,
    EvalConfig,
    ObjectivesConfig,
    TrainConfig,
    apply_override,
    error_text,
    load_raw,
    run_identity,
)
from birdie_ssm.curriculum import Controller, eval_steps, make_controller, takes_parameter
from birdie_ssm.curriculum.base import floats_from_json, floats_to_json
from birdie_ssm.curriculum.rewards import get_reward, total_reward
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives import expand_arms
from birdie_ssm.objectives.arms import Arm
from birdie_ssm.pipeline import (
    Batch,
    BatchSource,
    available_host_bytes,
    check_host_memory,
    open_pipeline,
    resolve_workers,
    token_corpus,
)
from birdie_ssm.pipeline import validation_batches as held_out_batches
from birdie_ssm.plugins import import_module
from birdie_ssm.text import Tokenizer, make_tokenizer
from birdie_ssm.text.corpus import make_source

__all__ = ["Birdie", "birdie_rl_fields", "build_controller", "causal_lm_fields"]

IGNORE = -100  # the label PyTorch's cross-entropy (and Hugging Face) skips
# The sections of a run config Birdie reads (see Sections).
SECTIONS = {
    "data": DataConfig,
    "objectives": ObjectivesConfig,
    "controller": ControllerConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}
# Of the trainer's sections Birdie reads only these keys (the rest are not checked here).
KEPT = {"train": ("steps", "seed"), "eval": ("schedule", "every", "scale")}


def causal_lm_fields(batch: Batch) -> dict[str, np.ndarray]:
    """The fields a Hugging Face / PyTorch causal LM takes (int64): ``input_ids``, ``labels``
    (aligned with the inputs, the model shifts them; -100 where no loss), ``attention_mask``
    (1 = token, 0 = padding) and ``position_ids`` (restarting at each packed example)."""
    labels = np.full(batch.input_ids.shape, IGNORE, dtype=np.int64)
    labels[:, 1:] = np.where(batch.loss_mask[:, :-1], batch.target_ids[:, :-1], IGNORE)
    return {
        "input_ids": batch.input_ids.astype(np.int64),
        "labels": labels,
        "attention_mask": (batch.segment_ids > 0).astype(np.int64),
        "position_ids": batch.positions.astype(np.int64),
    }


def birdie_rl_fields(batch: Batch) -> dict[str, np.ndarray]:
    """birdie-rl's layout (int64): ``input_ids``, pre-shifted ``label_ids`` (-100 where no
    loss), ``attention_mask`` (1 = prompt, read bidirectionally; 3 = target; 0 = padding),
    ``segment_ids`` (1..k, 0 = padding) and ``position_ids``."""
    mask = np.where(batch.prefix_mask, 1, np.where(batch.segment_ids > 0, 3, 0))
    return {
        "input_ids": batch.input_ids.astype(np.int64),
        "label_ids": np.where(batch.loss_mask, batch.target_ids, IGNORE).astype(np.int64),
        "attention_mask": mask.astype(np.int64),
        "segment_ids": batch.segment_ids.astype(np.int64),
        "position_ids": batch.positions.astype(np.int64),
    }


def build_controller(config: Config | Sections, arms: Sequence[Arm]) -> Controller:
    """The controller ``config.controller`` names (its plug-in modules imported first); it is
    told the configured mixture and decides itself what to make of it, and seeded by
    ``train.seed`` when it takes a ``seed`` that ``controller.params`` does not set."""
    section = config.controller
    for name in section.modules:
        import_module(name, what="controller.modules")
    if "reward" in section.params:
        raise BirdieError(
            "controller.params.reward: the reward is set by controller.reward (birdie or relative)"
        )
    params = dict(section.params)
    # A controller's own randomness follows the run's seed unless the config fixes it.
    if "seed" not in params and takes_parameter(section.name, "seed"):
        params["seed"] = config.train.seed
    return make_controller(
        section.name,
        [a.name for a in arms],
        [a.objective_class for a in arms],
        mixture=[a.weight for a in arms],
        reward=section.reward,
        **params,
    )


class Sections(NamedTuple):
    """What Birdie reads of a run config (a ``Config`` has the same attributes). The model
    section is the trainer's: its checks import JAX, and Birdie never does."""

    data: DataConfig
    objectives: ObjectivesConfig
    controller: ControllerConfig
    train: TrainConfig  # steps (the evaluation schedule's length) and seed; the rest default
    eval: EvalConfig  # the evaluation schedule


def _sections(source: Config | Mapping[str, Any] | str | Path, overrides: list[str]) -> Sections:
    """Birdie's sections of a run config, validated (``key=value`` overrides applied first)."""
    if isinstance(source, Config):
        if overrides:
            raise BirdieError("overrides apply to a config file or mapping, not to a Config")
        return Sections(*(getattr(source, name) for name in Sections._fields))
    raw = dict(source) if isinstance(source, Mapping) else load_raw(source)
    for assignment in overrides:
        apply_override(raw, assignment)
    unknown = sorted(set(raw) - set(Config.model_fields))
    if unknown:
        raise BirdieError(
            f"unknown config section '{unknown[0]}' (accepted: {', '.join(Config.model_fields)})"
        )
    parts: dict[str, Any] = {}
    for name, kind in SECTIONS.items():
        values = raw.get(name) or {}
        if name in KEPT:
            values = {k: v for k, v in values.items() if k in KEPT[name]}
        try:
            parts[name] = kind.model_validate(values)
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join([name, *map(str, error["loc"])])
            raise BirdieError(f"{key}: {error_text(error)}") from None
    return Sections(**parts)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b": value}`` (lists kept whole)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _auto_workers(workers: int | str) -> int:
    """``data.workers: auto`` without importing JAX: JAX's backend decides when a JAX loop has
    loaded it; otherwise the loop's accelerator is not ours to know, and the spare cores
    (``resolve_workers``'s rule for accelerators) make batches."""
    if workers != "auto" or "jax" in sys.modules:
        return resolve_workers(workers)
    return resolve_workers(workers, platform="other")


class Birdie:
    """The objective mixture for any training loop: batches, the evaluation schedule, and the
    controller adapting the mixture from the validation losses the loop reports.

    Build it with ``Birdie.from_config`` (a run config's ``data``, ``objectives``,
    ``controller`` and ``eval`` sections) or from the parts. Several processes: each passes
    its ``rank`` of ``world_size`` and an ``all_reduce`` summing a NumPy array over the ranks;
    each is served its own rows of every global batch, and every rank's controller sees the
    same losses and realised mixture, so all choose the same next mixture.
    """

    def __init__(
        self,
        pipeline: BatchSource,
        validation: Sequence[Sequence[Batch]],
        arms: Sequence[Arm],
        controller: Controller,
        *,
        eval_at: Iterable[int],
        reward: str = "birdie",
        rank: int = 0,
        world_size: int = 1,
        all_reduce: Callable[[np.ndarray], np.ndarray] | None = None,
        identity: Mapping[str, Any] | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        """``pipeline`` serves this rank's rows of each batch and ``validation`` its rows of the
        fixed held-out batches per arm; ``eval_at``: the steps ``should_evaluate`` accepts;
        ``identity``: the settings a state must match to be loaded (``from_config`` fills it);
        ``tokenizer``: the one the batches were made with (``tokenizer.vocab_size`` sizes a
        model's embedding)."""
        _check_rank(rank, world_size)
        if world_size > 1 and all_reduce is None:
            raise BirdieError(
                f"world_size {world_size} needs all_reduce (a function summing an array over ranks)"
            )
        if len(validation) != len(arms):
            raise BirdieError(f"validation holds {len(validation)} arms' batches, not {len(arms)}")
        self.pipeline, self.controller, self.tokenizer = pipeline, controller, tokenizer
        self.arms = list(arms)
        self.arm_names = [a.name for a in self.arms]
        self.arm_classes = [a.objective_class for a in self.arms]
        self._validation = {
            name: list(b) for name, b in zip(self.arm_names, validation, strict=True)
        }
        self.eval_at = sorted(set(eval_at))
        self._eval_set = set(self.eval_at)
        self.reward_name, self._reward = reward, get_reward(reward)
        self.rank, self.world_size, self._all_reduce = rank, world_size, all_reduce
        self.identity = {"arms": self.arm_names, **_flat(dict(identity or {}))}
        n = len(self.arms)
        self.mixture = np.asarray(controller.initial_mixture(), dtype=np.float64)
        self.pipeline.set_mixture(self.mixture)
        self.tokens = np.zeros(n, dtype=np.int64)  # target tokens trained per arm, this rank
        self._tokens_at_report = np.zeros(n, dtype=np.int64)
        self.batches = 0  # batches served
        self.last_step: int | None = None  # the step of the last report
        self.last_losses: np.ndarray | None = None
        self.rewards: dict[str, float] | None = None  # per arm, from the last two reports
        self.history: list[dict[str, Any]] = []  # one record per report
        self._warned_nonfinite = False
        self._closed = False

    @classmethod
    def from_config(
        cls,
        config: Config | Mapping[str, Any] | str | Path | None = None,
        overrides: list[str] | None = None,
        *,
        steps: int | None = None,
        tokenizer: Tokenizer | None = None,
        rank: int = 0,
        world_size: int = 1,
        all_reduce: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Birdie:
        """Birdie for a run config (a ``Config``, a YAML path or a mapping; None: the
        quickstart's sections), ``key=value`` ``overrides`` applied to a file or mapping.
        ``steps``: the loop's length (default ``train.steps``), for the evaluation schedule;
        ``tokenizer``: one already built from ``data``."""
        _check_rank(rank, world_size)
        config = _sections({} if config is None else config, overrides or [])
        data = config.data
        workers = _auto_workers(data.workers)
        if workers != data.workers:
            data = data.model_copy(update={"workers": workers})
        check_host_memory(data, available_host_bytes())
        tokenizer = tokenizer or make_tokenizer(data)
        source = make_source(data)
        objectives = config.objectives
        arms = expand_arms(objectives.mixture, tokenizer.specials, objectives.modules, tokenizer)
        controller = build_controller(config, arms)
        mixture = np.asarray(controller.initial_mixture(), dtype=np.float64)
        hosts = dict(process_index=rank, process_count=world_size)
        corpus = token_corpus(data, source, tokenizer)  # file sources: the token cache, built once
        validation = held_out_batches(
            corpus,
            tokenizer,
            arms,
            seq_len=data.seq_len,
            batch_size=data.batch_size,
            batches_per_arm=data.val_batches_per_arm,
            seed=data.seed + 1,
            **hosts,
        )
        ev = config.eval
        total = config.train.steps if steps is None else steps
        identity = {
            "data": run_identity(data, "data"),
            "objectives": run_identity(objectives, "objectives"),
            "controller": run_identity(config.controller, "controller"),
        }
        pipeline = open_pipeline(data, corpus, tokenizer, arms, mixture, **hosts)
        try:
            return cls(
                pipeline,
                validation,
                arms,
                controller,
                eval_at=[0, *eval_steps(total, ev.schedule, ev.every, ev.scale)],
                reward=config.controller.reward,
                rank=rank,
                world_size=world_size,
                all_reduce=all_reduce,
                identity=identity,
                tokenizer=tokenizer,
            )
        except BaseException:
            pipeline.close()
            raise

    # -- the loop -----------------------------------------------------------------------------

    def next_batch(self) -> Batch:
        """This rank's rows of the next training batch; counted as trained."""
        self._check_open()
        batch = self.pipeline.next_batch()
        self.tokens += np.bincount(batch.arm_ids[batch.loss_mask], minlength=len(self.arms))
        self.batches += 1
        return batch

    def should_evaluate(self, step: int) -> bool:
        """Whether to validate and ``report`` after ``step`` steps (step 0: before training)."""
        self._check_open()
        return step in self._eval_set

    def validation_batches(self) -> dict[str, list[Batch]]:
        """The fixed held-out batches per arm name (this rank's rows); the same every time."""
        self._check_open()
        return self._validation

    def report(self, step: int, losses: Mapping[str, float]) -> np.ndarray:
        """Take the mean validation loss per arm name at ``step``; the controller is credited
        with the realised mixture (each arm's share of the target tokens served since the last
        report, all ranks) and chooses the next mixture, which the coming batches use.

        Returns the mixture. Losses that are not all finite leave the controller and mixture
        as they were (said once). With several ranks the losses are averaged over them."""
        self._check_open()
        values = self._loss_vector(losses)
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise BirdieError(f"report: step must be an integer >= 0, got {step!r}")
        if self.last_step is not None and step <= self.last_step:
            raise BirdieError(
                f"report: step {step} comes after step {self.last_step}, which was reported "
                "already; steps must increase"
            )
        if self.world_size > 1:
            values = self._reduce(values) / self.world_size
        requested, realised = self.mixture, self.realised_mixture()
        record: dict[str, Any] = {"step": int(step), "val_loss": self._named(values)}
        self.last_step = int(step)
        if not np.all(np.isfinite(values)):
            if not self._warned_nonfinite:
                warnings.warn(
                    f"Birdie.report: non-finite validation losses at step {step} "
                    f"({self._named(values)}); the mixture is kept (said once)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned_nonfinite = True
            record["skipped"] = True
        else:
            if self.last_losses is not None:
                arm_rewards = self._reward(self.last_losses, values)
                self.rewards = self._named(arm_rewards)
                record["reward"] = total_reward(arm_rewards, self.arm_classes)
            self.last_losses = values
            mixture = self.controller.update(step, values, played=realised)
            self._tokens_at_report = self.tokens.copy()
            self.set_mixture(mixture)
        record.update(
            requested_mixture=self._named(requested),
            realised_mixture=None if realised is None else self._named(realised),
            mixture=self._named(self.mixture),
            controller=self.controller.info,
        )
        self.history.append(record)
        return self.mixture.copy()

    def source_tokens(self) -> dict[str, int]:
        """Tokens read so far from each corpus source (this rank's): the realised corpus
        mixture, beside the objective mixture."""
        self._check_open()
        return self.pipeline.source_tokens()

    def realised_mixture(self) -> np.ndarray | None:
        """Each arm's share of the target tokens served since the last report (all ranks);
        None before any was served."""
        self._check_open()
        tokens = self._reduce(self.tokens - self._tokens_at_report)
        total = tokens.sum()
        return tokens / total if total > 0 else None

    def set_mixture(self, mixture: np.ndarray) -> None:
        """Serve the coming batches from ``mixture`` (probabilities over arms), outside the
        controller: a new realised interval starts (``curriculum.MixtureEnv`` steps so)."""
        self._check_open()
        self.mixture = np.asarray(mixture, dtype=np.float64)
        self.pipeline.set_mixture(self.mixture)
        self._tokens_at_report = self.tokens.copy()

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the coming batches and mixtures depend on (JSON-serialisable)."""
        self._check_open()
        return {
            "identity": self.identity,
            "pipeline": self.pipeline.state_dict(),
            "controller": self.controller.state_dict(),
            "mixture": self.mixture.tolist(),
            "tokens": self.tokens.tolist(),
            "tokens_at_report": self._tokens_at_report.tolist(),
            "batches": self.batches,
            "last_step": self.last_step,
            "last_losses": floats_to_json(self.last_losses),
            "rewards": self.rewards,
            "history": self.history,
            "warned_nonfinite": self._warned_nonfinite,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a ``state_dict()`` of a Birdie with the same settings (else a
        BirdieError naming what differs, and nothing changed)."""
        self._check_open()
        saved = state.get("identity", {})
        differ = [
            f"{key}: {saved.get(key)!r} in the state, {self.identity.get(key)!r} here"
            for key in sorted(set(saved) | set(self.identity))
            if saved.get(key) != self.identity.get(key)
        ]
        if differ:
            raise BirdieError(f"Birdie state from other settings ({'; '.join(differ)})")
        self.pipeline.load_state_dict(state["pipeline"])
        self.controller.load_state_dict(state["controller"])
        self.mixture = np.asarray(state["mixture"], dtype=np.float64)
        self.pipeline.set_mixture(self.mixture)
        self.tokens = np.asarray(state["tokens"], dtype=np.int64)
        self._tokens_at_report = np.asarray(state["tokens_at_report"], dtype=np.int64)
        self.batches = int(state["batches"])
        self.last_step = state["last_step"]
        self.last_losses = floats_from_json(state["last_losses"])
        self.rewards = state["rewards"]
        self.history = list(state["history"])
        self._warned_nonfinite = bool(state["warned_nonfinite"])

    def close(self) -> None:
        """Stop the data workers; every later call is an error."""
        if not self._closed:
            self._closed = True
            self.pipeline.close()

    def __enter__(self) -> Birdie:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BirdieError("this Birdie was closed; build a new one (Birdie.from_config)")

    def _named(self, values: np.ndarray) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.arm_names, values, strict=True)}

    def _reduce(self, values: np.ndarray) -> np.ndarray:
        """``values`` summed over the ranks (as they are with one)."""
        if self.world_size == 1:
            return values
        return np.asarray(self._all_reduce(np.asarray(values)), dtype=values.dtype)

    def _loss_vector(self, losses: Mapping[str, float]) -> np.ndarray:
        """``losses`` by arm name as a vector in arm order, or a BirdieError naming the arm."""
        if not isinstance(losses, Mapping):
            raise BirdieError(
                f"report: losses must map arm names to floats, got {type(losses).__name__}"
            )
        unknown = [name for name in losses if name not in self.arm_names]
        missing = [name for name in self.arm_names if name not in losses]
        if unknown or missing:
            what = f"unknown arm '{unknown[0]}'" if unknown else f"no loss for arm '{missing[0]}'"
            raise BirdieError(f"report: {what} (arms: {', '.join(self.arm_names)})")
        try:
            return np.array([float(losses[name]) for name in self.arm_names], dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(n for n in self.arm_names if not _is_number(losses[n]))
            raise BirdieError(
                f"report: the loss of arm '{bad}' is {losses[bad]!r}, not a number"
            ) from None


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise BirdieError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
