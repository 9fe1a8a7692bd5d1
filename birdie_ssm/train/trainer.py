"""The trainer: owns the loop, the pipeline, the controller, validation and checkpoints."""

from __future__ import annotations

import inspect
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from birdie_ssm.config import Config, dump_config
from birdie_ssm.curriculum import eval_steps, make_controller
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model, count_params
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline import open_pipeline, validation_batches
from birdie_ssm.text import make_tokenizer, padded_vocab_size
from birdie_ssm.text.corpus import make_source
from birdie_ssm.train.checkpoint import Checkpointer
from birdie_ssm.train.flops import mfu_meter
from birdie_ssm.train.metrics import MetricsLog
from birdie_ssm.train.optim import learning_rate, make_optimizer
from birdie_ssm.train.sharding import (
    batch_sharding,
    check_batch,
    global_batch,
    make_mesh,
    state_shardings,
)
from birdie_ssm.train.steps import make_eval_step, make_train_step


class Interrupted(BirdieError):
    """Training stopped by a signal after writing a checkpoint."""

    def __init__(self, signum: int, step: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} at step {step}: checkpoint written; continue with --resume")
        self.exit_code = 128 + signum


def _init_distributed() -> None:
    """Join the multi-host job (coordinator and process ids come from the environment)."""
    try:
        jax.distributed.initialize()
    except RuntimeError as exc:
        if "already" not in str(exc):
            raise BirdieError(f"train.distributed: could not join the job: {exc}") from None


def _host_slice(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This host's share of a batch every host built identically."""
    n = len(next(iter(rows.values()))) // jax.process_count()
    start = jax.process_index() * n
    return {k: v[start : start + n] for k, v in rows.items()}


def _takes_played(update: Any) -> bool:
    """Whether a controller's ``update`` accepts ``played=`` (a plug-in may predate it)."""
    try:
        parameters = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "played" or p.kind is p.VAR_KEYWORD for p in parameters)


def _shares(tokens: np.ndarray) -> np.ndarray | None:
    """Per-arm token counts as shares, or None when there are none."""
    total = tokens.sum()
    return tokens / total if total > 0 else None


def _controller_params(config: Config, weights: list[float]) -> dict[str, Any]:
    params = dict(config.controller.params)
    if config.controller.name == "fixed":
        params.setdefault("weights", weights)  # the mixture's own weights are the fixed mixture
    return params


class Trainer:
    """Trains one run in ``run_dir`` (config.yaml, metrics.jsonl, checkpoints/)."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
        init_from: str | Path | None = None,
    ) -> None:
        self.config, self.run_dir = config, Path(run_dir)
        data = config.data
        if config.train.distributed:
            _init_distributed()
        self.mesh = make_mesh(config.train)
        check_batch(data.batch_size, self.mesh)
        self.tokenizer = make_tokenizer(data)
        self.source = make_source(data)
        self.arms = expand_arms(
            config.objectives.mixture, self.tokenizer.specials, config.objectives.modules
        )
        self.arm_names = [a.name for a in self.arms]
        self.arm_classes = [a.objective_class for a in self.arms]

        vocab = config.model.vocab_size or padded_vocab_size(self.tokenizer)
        if vocab < self.tokenizer.vocab_size:
            raise BirdieError(
                f"model.vocab_size {vocab} is smaller than the tokenizer's {self.tokenizer.vocab_size}"
            )
        model = build_model(config.model, vocab, nnx.Rngs(config.train.seed))
        self.num_params = count_params(model)
        self.mfu = mfu_meter(config.model, vocab, data.seq_len)  # tokens/s -> MFU
        self.graphdef, self.params = nnx.split(model)
        if init_from is not None:
            self.params = self._initial_params(Path(init_from))
        self.optimizer = make_optimizer(config.train)
        param_shardings = state_shardings(self.params, self.mesh)
        opt_shardings = state_shardings(jax.eval_shape(self.optimizer.init, self.params), self.mesh)
        self.params = jax.device_put(self.params, param_shardings)
        self.opt_state = jax.jit(self.optimizer.init, out_shardings=opt_shardings)(self.params)
        self.batch_sharding = batch_sharding(self.mesh)
        self.lr = learning_rate(config.train)
        self.train_step = make_train_step(
            self.graphdef, self.optimizer, len(self.arms), (param_shardings, opt_shardings)
        )
        self.eval_step = make_eval_step(self.graphdef, len(self.arms))

        self.controller = make_controller(
            config.controller.name,
            self.arm_names,
            self.arm_classes,
            reward=config.controller.reward,
            **_controller_params(config, [a.weight for a in self.arms]),
        )
        self.mixture = np.asarray(self.controller.initial_mixture(), dtype=np.float64)
        self._credit_played = _takes_played(self.controller.update)
        # Target tokens per arm trained since the last evaluation (credited to the controller)
        # and since the last train log record; counted from the host-side batch, no device sync.
        self.interval_tokens = np.zeros(len(self.arms), dtype=np.int64)
        self.window_tokens = np.zeros(len(self.arms), dtype=np.int64)
        # Each host feeds its own rows from its own stream.
        hosts, host = jax.process_count(), jax.process_index()
        local = config.model_copy(
            update={
                "data": data.model_copy(
                    update={
                        "batch_size": data.batch_size // hosts,
                        "seed": data.seed + 1_000_003 * host,
                    }
                )
            }
        )
        self.pipeline = open_pipeline(local, self.source, self.tokenizer, self.arms, self.mixture)
        val_sets = validation_batches(
            self.source.val,
            self.tokenizer,
            self.arms,
            seq_len=data.seq_len,
            batch_size=data.batch_size,
            batches_per_arm=data.val_batches_per_arm,
            seed=data.seed + 1,
        )
        # The held-out set never changes: place it on the devices once, not at every evaluation.
        self.val_arrays = [
            [global_batch(_host_slice(b.as_dict()), self.batch_sharding) for b in batches]
            for batches in val_sets
        ]
        self.step = 0
        self.tokens_seen = 0
        self.nonfinite_streak = 0
        self.nonfinite_total = 0
        self._pending_finite: jax.Array | None = None
        self._signal: int | None = None
        self._window: list[Any] = []  # losses since the last log record (saved for exact resume)
        self.progress = progress and config.train.progress
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", config.train.loggers, config)
        self.checkpointer = Checkpointer(self.run_dir, config.train.keep_checkpoints)
        if resume:
            self.restore()
        else:
            dump_config(config, self.run_dir / "config.yaml")

    def _initial_params(self, source: Path):
        """Parameters of another run (fine-tuning); the architectures must match."""
        from birdie_ssm.train.loading import load_run

        other = load_run(source)
        _, params = nnx.split(other.model)
        mine, theirs = jax.tree.structure(self.params), jax.tree.structure(params)
        shapes = [x.shape for x in jax.tree.leaves(self.params)]
        if mine != theirs or shapes != [x.shape for x in jax.tree.leaves(params)]:
            raise BirdieError(
                f"--init-from '{source}': its model ({other.config.model.width} wide, "
                f"{other.config.model.depth} deep, {other.config.model.arch}) does not match this "
                "config's model; use the same model section"
            )
        return params

    # -- the pieces a loop (or curriculum.MixtureEnv) drives -------------------------------------------

    def _mixture_dict(self, mixture: np.ndarray | None = None) -> dict[str, float]:
        mixture = self.mixture if mixture is None else mixture
        return {n: round(float(p), 6) for n, p in zip(self.arm_names, mixture, strict=True)}

    def _all_hosts(self, tokens: np.ndarray) -> np.ndarray:
        """Per-arm token counts summed over every host's rows (one transfer, at evaluations)."""
        if jax.process_count() == 1:
            return tokens
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(tokens)).sum(axis=0)

    def realised_mixture(self) -> np.ndarray | None:
        """Each arm's share of the target tokens trained since the last evaluation (all hosts).

        None before any token was trained. ``run_steps`` starts a new interval, so under
        ``curriculum.MixtureEnv`` this is the mixture its last action really trained.
        """
        return _shares(self._all_hosts(self.interval_tokens))

    def set_mixture(self, mixture: np.ndarray) -> None:
        """Sample the coming batches from ``mixture`` (probabilities over arms)."""
        self.mixture = np.asarray(mixture, dtype=np.float64)
        self.pipeline.set_mixture(self.mixture)

    def train_one(self) -> dict[str, jax.Array]:
        """One optimisation step on the next batch; returns the step's (device) metrics."""
        batch = self.pipeline.next_batch()  # built while the previous step still runs
        trained = np.bincount(batch.arm_ids[batch.loss_mask], minlength=len(self.arms))
        self.interval_tokens += trained
        self.window_tokens += trained
        self._check_finite()
        arrays = global_batch(batch.as_dict(), self.batch_sharding)
        self.params, self.opt_state, metrics = self.train_step(self.params, self.opt_state, arrays)
        self._pending_finite = metrics["finite"]
        self.step += 1
        self.tokens_seen += batch.input_ids.size * jax.process_count()
        return metrics

    def _check_finite(self) -> None:
        """Count the last step if it was skipped for a non-finite loss; stop after too many."""
        if self._pending_finite is None:
            return
        finite, self._pending_finite = bool(self._pending_finite), None
        if finite:
            self.nonfinite_streak = 0
            return
        self.nonfinite_streak += 1
        self.nonfinite_total += 1
        if self.nonfinite_streak >= self.config.train.max_nonfinite:
            latest = self.checkpointer.latest_step()
            raise BirdieError(
                f"{self.nonfinite_streak} steps in a row (up to step {self.step}) had a non-finite "
                f"loss or gradients and were skipped; stopping. The last good checkpoint is "
                f"{'step ' + str(latest) if latest is not None else 'none'}; "
                "lower train.lr or check the data"
            )

    def run_steps(self, n: int, mixture: np.ndarray) -> None:
        """Train ``n`` steps with ``mixture`` (the MixtureEnv backing); a new realised interval."""
        self.set_mixture(mixture)
        self.interval_tokens[:] = 0
        for _ in range(n):
            self.train_one()

    def validate(self) -> np.ndarray:
        """Mean validation loss per arm on the fixed held-out set."""
        # Dispatch every batch, then fetch all results in one transfer.
        results = jax.device_get(
            [[self.eval_step(self.params, b) for b in batches] for batches in self.val_arrays]
        )
        losses = np.zeros(len(self.arms))
        for i, per_batch in enumerate(results):
            total = sum(float(sums[i]) for sums, _ in per_batch)
            count = sum(float(counts[i]) for _, counts in per_batch)
            losses[i] = total / count if count else np.nan
        return losses

    def evaluate_and_adapt(self) -> np.ndarray:
        """Validate, let the controller choose the next mixture, and log both.

        The controller is credited with the mixture realised since the last evaluation (each
        arm's share of the target tokens trained), not the one it asked for; the record holds
        both (``requested_mixture``, ``realised_mixture``) beside the next ``mixture``.
        """
        losses = self.validate()
        requested, realised = self.mixture, self.realised_mixture()
        if self._credit_played:
            mixture = self.controller.update(self.step, losses, played=realised)
        else:
            mixture = self.controller.update(self.step, losses)
        self.interval_tokens[:] = 0
        self.set_mixture(mixture)
        self.metrics.write(
            {
                "kind": "eval",
                "step": self.step,
                "val_loss": dict(zip(self.arm_names, losses.tolist(), strict=True)),
                "requested_mixture": self._mixture_dict(requested),
                "realised_mixture": None if realised is None else self._mixture_dict(realised),
                "mixture": self._mixture_dict(),
                "controller": self.controller.info,
            }
        )
        return losses

    # -- checkpoints -------------------------------------------------------------------------

    def save(self) -> None:
        """Checkpoint the current step (once: a step already on disk is not written again)."""
        if self.checkpointer.latest_step() == self.step:
            return
        meta = {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "nonfinite_total": self.nonfinite_total,
            "loss_window": [float(x) for x in jax.device_get(self._window)],
            "mixture": self.mixture.tolist(),
            "interval_tokens": self.interval_tokens.tolist(),
            "window_tokens": self.window_tokens.tolist(),
            "controller": self.controller.state_dict(),
            "pipeline": self.pipeline.state_dict(),
            "arms": self.arm_names,
            "config": self.config.model_dump(mode="json"),
        }
        self.checkpointer.save(
            self.step, {"params": self.params, "opt_state": self.opt_state}, meta
        )

    def restore(self, step: int | None = None) -> None:
        """Continue from a checkpoint of this run (the latest by default)."""
        meta = self.checkpointer.read_meta(step)
        self._check_compatible(meta)
        target = {"params": self.params, "opt_state": self.opt_state}
        state, meta = self.checkpointer.restore(target, meta["step"])
        self.params, self.opt_state = state["params"], state["opt_state"]
        self.step, self.tokens_seen = int(meta["step"]), int(meta["tokens_seen"])
        self.nonfinite_total = int(meta.get("nonfinite_total", 0))
        self._window = list(meta.get("loss_window", []))
        zeros = [0] * len(self.arms)
        self.interval_tokens = np.asarray(meta.get("interval_tokens", zeros), dtype=np.int64)
        self.window_tokens = np.asarray(meta.get("window_tokens", zeros), dtype=np.int64)
        self.controller.load_state_dict(meta["controller"])
        self.pipeline.load_state_dict(meta["pipeline"])
        self.set_mixture(np.asarray(meta["mixture"]))
        self.metrics.truncate_after(self.step)

    def _check_compatible(self, meta: dict[str, Any]) -> None:
        """Refuse a checkpoint whose model or arms differ from this config's, saying how."""
        saved = meta.get("config", {}).get("model", {})
        current = self.config.model.model_dump(mode="json")
        diffs = [
            f"model.{k}: checkpoint {saved.get(k)!r}, config {current[k]!r}"
            for k in current
            if k in saved and saved[k] != current[k] and k != "scan_impl"
        ]
        if meta.get("arms") != self.arm_names:
            diffs.append(f"arms: checkpoint {meta.get('arms')}, config {self.arm_names}")
        if diffs:
            raise BirdieError(
                f"checkpoint {meta.get('step')} does not match this config ({'; '.join(diffs)})"
            )

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> dict[str, float]:
        """Train to ``train.steps``; returns the final validation loss per arm."""
        cfg = self.config.train
        evals = set(
            eval_steps(
                cfg.steps, self.config.eval.schedule, self.config.eval.every, self.config.eval.scale
            )
        )
        losses = self.evaluate_and_adapt() if self.step == 0 else None
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
        )
        t0, tokens0 = time.perf_counter(), self.tokens_seen
        previous = self._catch_signals()
        try:
            while self.step < cfg.steps:
                if self._signal is not None:
                    self.save()
                    raise Interrupted(self._signal, self.step)
                self._window.append(self.train_one()["loss"])
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    # float64 on the host, so a window restored from JSON averages identically
                    loss = float(np.mean(np.asarray(jax.device_get(self._window), np.float64)))
                    elapsed = time.perf_counter() - t0
                    tps = (self.tokens_seen - tokens0) / max(elapsed, 1e-9)
                    realised = _shares(self.window_tokens)  # this host's rows
                    mfu = self.mfu(tps)
                    self.metrics.write(
                        {
                            "kind": "train",
                            "step": self.step,
                            "loss": loss,
                            "lr": float(self.lr(self.step - 1)),
                            "tokens_per_s": tps,
                            "mfu": mfu,
                            "nonfinite_skipped": self.nonfinite_total,
                            "mixture": self._mixture_dict(),
                            "realised_mixture": None
                            if realised is None
                            else self._mixture_dict(realised),
                        }
                    )
                    bar.set_postfix_str(
                        f"loss {loss:.3f} | {tps:,.0f} tok/s | "
                        f"MFU {'n/a' if mfu is None else f'{mfu:.1%}'} | mix {self._mixture_text()}"
                    )
                    self._window, t0, tokens0 = [], time.perf_counter(), self.tokens_seen
                    self.window_tokens[:] = 0
                if self.step in evals:
                    losses = self.evaluate_and_adapt()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save()
            self._check_finite()
        finally:
            bar.close()
            self._restore_signals(previous)
        if losses is None:
            losses = self.validate()
        return dict(zip(self.arm_names, losses.tolist(), strict=True))

    def _catch_signals(self) -> dict[int, Any]:
        """SIGTERM and Ctrl-C finish the current step, write a checkpoint and stop."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            self._signal = signum

        return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _mixture_text(self) -> str:
        by_class: dict[str, float] = {}
        for cls, p in zip(self.arm_classes, self.mixture, strict=True):
            by_class[cls] = by_class.get(cls, 0.0) + float(p)
        return " ".join(f"{c[:6]}={p:.2f}" for c, p in by_class.items())

    def close(self) -> None:
        self.metrics.close()
        self.pipeline.close()
        self.checkpointer.close()
