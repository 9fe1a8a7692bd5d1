"""The trainer: drives a built run (``train.build``) through the loop, with hooks.

The loop (``fit``) reads in one screen: train a step, log, call the ``on_step`` hooks, validate
and adapt the mixture at the evaluation steps (``on_eval``), checkpoint (``on_checkpoint``).
Everything it drives is assembled by ``build_run``; batches, the evaluation schedule and the
mixture come from the run's ``Birdie``, as in anyone's own loop.
"""

from __future__ import annotations

import math
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pydantic
from tqdm.auto import tqdm

from birdie_ssm.config import Config, TrainConfig, diff_keys, error_text, run_identity
from birdie_ssm.errors import BirdieError
from birdie_ssm.text import save_tokenizer
from birdie_ssm.train import rundir
from birdie_ssm.train.build import build_run
from birdie_ssm.train.checkpoint import Checkpointer
from birdie_ssm.train.flops import mfu_meter
from birdie_ssm.train.loading import load_run
from birdie_ssm.train.metrics import MetricsLog
from birdie_ssm.train.optim import decay_start, learning_rate
from birdie_ssm.train.sharding import global_batch


class Interrupted(BirdieError):
    """Training stopped by a signal after writing a checkpoint."""

    def __init__(self, signum: int, step: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} at step {step}: checkpoint written; continue with --resume")
        self.exit_code, self.signal_name, self.step = 128 + signum, name, step


@dataclass
class Hooks:
    """Callbacks the loop calls; append to the lists (or pass ``Trainer(..., hooks=Hooks(...))``).

    - ``on_step(trainer, metrics)``: after every optimisation step; ``metrics`` are the step's
      device arrays (``loss``, ``finite``, ``grad_norm``, ``arm_loss_sums``, ``arm_counts``):
      reading them waits for the step, so a hook that only needs them now and then should check
      ``trainer.step`` first.
    - ``on_eval(trainer, losses)``: after each validation, once the controller chose the next
      mixture (``trainer.mixture``); ``losses`` per arm, in ``trainer.arm_names`` order.
    - ``on_checkpoint(trainer, step)``: after checkpoint ``step`` is complete on disk.
    """

    on_step: list[Callable[[Trainer, dict[str, jax.Array]], None]] = field(default_factory=list)
    on_eval: list[Callable[[Trainer, np.ndarray], None]] = field(default_factory=list)
    on_checkpoint: list[Callable[[Trainer, int], None]] = field(default_factory=list)


def out_of_memory(exc: BaseException, config: Config, where: str) -> BirdieError | None:
    """A one-line error for XLA's RESOURCE_EXHAUSTED (what ran out, the knobs); None otherwise."""
    text = str(exc)
    if not isinstance(exc, jax.errors.JaxRuntimeError) or "RESOURCE_EXHAUSTED" not in text:
        return None
    size = re.search(r"allocat\w*\s+(\d+)\s*bytes", text)
    what = f" allocating {int(size.group(1)) / 2**30:.1f} GiB" if size else ""
    data = config.data
    remat = (
        " (model.remat is already on)"
        if config.model.remat
        else ", or set model.remat=true (recompute activations in the backward pass)"
    )
    return BirdieError(
        f"out of device memory {where}{what}: lower data.seq_len ({data.seq_len}) or "
        f"data.batch_size ({data.batch_size}){remat}"
    )


# The train settings that shape the learning-rate schedule.
SCHEDULE_KEYS = ("steps", "lr", "min_lr_ratio", "warmup_steps", "schedule", "decay_fraction")


def _shares(tokens: np.ndarray) -> np.ndarray | None:
    """Per-arm token counts as shares, or None when there are none."""
    total = tokens.sum()
    return tokens / total if total > 0 else None


class Trainer:
    """Trains one run in ``run_dir`` (config.yaml, metrics.jsonl, checkpoints/).

    ``trainer.run`` holds what ``build_run`` assembled and the live train state
    (``run.params``, ``run.opt_state``: ``trainer.state`` as one unit).
    """

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        *,
        resume: bool = False,
        resume_step: int | None = None,
        progress: bool = True,
        init_from: str | Path | None = None,
        hooks: Hooks | None = None,
        allow_lr_change: bool = False,
    ) -> None:
        """``resume``: continue the run in ``run_dir`` from its latest checkpoint, or from
        ``resume_step`` (later checkpoints are then removed, once it has restored).
        ``allow_lr_change``: resume even where the changed config moves the learning rate."""
        self.config, self.run_dir = config, Path(run_dir)
        try:
            # What the loop drives; ``self.run.params`` and ``.opt_state`` are the live train state.
            self.run = build_run(
                config, init_from=None if init_from is None else load_run(init_from)
            )
        except Exception as exc:
            oom = out_of_memory(exc, config, "while placing the model and data")
            if oom is None:
                raise
            raise oom from None
        self.config = config
        self.birdie = self.run.birdie
        self.arm_names, self.arm_classes = self.birdie.arm_names, self.birdie.arm_classes
        self.mfu = mfu_meter(config.model, self.run.vocab_size, config.data.seq_len)
        self.hooks = hooks or Hooks()
        # Birdie's per-arm target-token count at the last train log record (its realised mix).
        self.logged_tokens = self.birdie.tokens.copy()
        self.step = 0
        self.tokens_seen = 0
        self.nonfinite_streak = 0
        self.nonfinite_total = 0
        self._pending_finite: jax.Array | None = None
        self._signal: int | None = None
        self._window: list[Any] = []  # losses since the last log record (saved for exact resume)
        self._t0, self._tokens0, self._bar = time.perf_counter(), 0, None  # set again by fit
        self.progress = progress and config.train.progress
        self.removed_checkpoints: list[int] = []  # later ones, dropped to continue from resume_step
        # (before, after) where allow_lr_change let a resume move the learning rate
        self.lr_change: tuple[float, float] | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(rundir.metrics_path(self.run_dir), config.train.loggers, config)
        self.checkpointer = Checkpointer(self.run_dir, config.train.keep_checkpoints)
        if resume:
            try:
                self.restore(resume_step, allow_lr_change=allow_lr_change)
                if resume_step is not None:  # only now: a failed restore removes nothing
                    self.removed_checkpoints = self.checkpointer.remove_after(self.step)
            except BaseException:
                self.close()  # no Orbax threads left running behind the error
                raise
        else:
            rundir.write_config(config, self.run_dir)
            # The run keeps its tokenizer's files, so it evaluates once moved.
            save_tokenizer(self.run.tokenizer, rundir.tokenizer_dir(self.run_dir))

    @property
    def state(self) -> dict[str, Any]:
        """The train state (params and optimizer state): stepped, saved and restored as a unit."""
        return {"params": self.run.params, "opt_state": self.run.opt_state}

    @state.setter
    def state(self, state: dict[str, Any]) -> None:
        self.run.params, self.run.opt_state = state["params"], state["opt_state"]

    @property
    def mixture(self) -> np.ndarray:
        """The mixture the coming batches are drawn from (``birdie.mixture``)."""
        return self.birdie.mixture

    @property
    def params(self) -> Any:
        """The model parameters (``run.params``; replaced, not updated, at every step)."""
        return self.run.params

    @params.setter
    def params(self, params: Any) -> None:
        self.run.params = params

    @property
    def opt_state(self) -> Any:
        """The optimizer state (``run.opt_state``)."""
        return self.run.opt_state

    @opt_state.setter
    def opt_state(self, opt_state: Any) -> None:
        self.run.opt_state = opt_state

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> dict[str, float]:
        """Train to ``train.steps``; returns the final validation loss per arm. Running out of
        device memory (in a step or a validation) is a one-line BirdieError naming the knobs."""
        try:
            return self._fit()
        except Exception as exc:
            oom = out_of_memory(exc, self.config, f"at step {self.step + 1}")
            if oom is None:
                raise
            raise oom from None

    def _fit(self) -> dict[str, float]:
        cfg = self.config.train
        if self.step >= cfg.steps:  # a finished run: nothing to train
            return dict(zip(self.arm_names, self.validate().tolist(), strict=True))
        losses = self.evaluate_and_adapt() if self.step == 0 else None
        # A terminal gets a live bar; a log file one line per log record (log_train).
        live = self.progress and sys.stderr.isatty()
        self._bar = tqdm(total=cfg.steps, initial=self.step, disable=not live, unit="step",
                         dynamic_ncols=True)  # fmt: skip
        self._t0, self._tokens0 = time.perf_counter(), self.tokens_seen
        previous = self._catch_signals()
        try:
            while self.step < cfg.steps:
                if self._signal is not None:  # SIGTERM / Ctrl-C: checkpoint, then stop
                    self.save()
                    raise Interrupted(self._signal, self.step)
                metrics = self.train_one()
                self._window.append(metrics["loss"])
                self._bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self.log_train()
                for hook in self.hooks.on_step:
                    hook(self, metrics)
                if self.birdie.should_evaluate(self.step):
                    losses = self.evaluate_and_adapt()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save()
            self._check_finite()
        finally:
            self._bar.close()
            self._restore_signals(previous)
        if losses is None:
            losses = self.validate()
        return dict(zip(self.arm_names, losses.tolist(), strict=True))

    # -- the pieces the loop (or curriculum.MixtureEnv) drives ---------------------------------

    def train_one(self) -> dict[str, jax.Array]:
        """One optimisation step on the next batch; returns the step's (device) metrics."""
        batch = self.birdie.next_batch()  # built while the previous step still runs
        arrays = global_batch(batch.model_inputs(), self.run.batch_sharding)
        params, opt_state, metrics = self.run.train_step(
            self.run.params, self.run.opt_state, arrays
        )
        self.state = {"params": params, "opt_state": opt_state}
        self.step += 1
        self.tokens_seen += batch.input_ids.size * jax.process_count()
        # The previous step's flag is read only now, with this step queued behind it, so the
        # device never idles waiting for the host (a max_nonfinite stop comes one step later).
        self._check_finite(steps_ago=1)
        self._pending_finite = metrics["finite"]
        return metrics

    def log_train(self) -> None:
        """Write a train record (mean loss since the last one, rates, mixtures); update the bar."""
        # float64 on the host, so a window restored from JSON averages identically
        loss = float(np.mean(np.asarray(jax.device_get(self._window), np.float64)))
        elapsed = time.perf_counter() - self._t0
        tps = (self.tokens_seen - self._tokens0) / max(elapsed, 1e-9)
        realised = _shares(self.birdie.tokens - self.logged_tokens)  # this host's rows
        mfu = self.mfu(tps)
        self.metrics.write(
            {
                "kind": "train",
                "step": self.step,
                "loss": loss,
                "lr": float(self.run.lr(self.step - 1)),
                "tokens_per_s": tps,
                "mfu": mfu,
                "nonfinite_skipped": self.nonfinite_total,
                "mixture": self._mixture_dict(),
                "realised_mixture": None if realised is None else self._mixture_dict(realised),
                "source_tokens": self.birdie.source_tokens(),
            }
        )
        text = (
            f"loss {loss:.3f} | {tps:,.0f} tok/s | "
            f"MFU {'n/a' if mfu is None else f'{mfu:.1%}'} | mix {self._mixture_text()}"
        )
        if self._bar is not None and not self._bar.disable:
            self._bar.set_postfix_str(text)
        elif self.progress and self._bar is not None:
            print(f"step {self.step}/{self.config.train.steps} | {text}", file=sys.stderr,
                  flush=True)  # fmt: skip
        self._window, self._t0, self._tokens0 = [], time.perf_counter(), self.tokens_seen
        self.logged_tokens = self.birdie.tokens.copy()

    def _check_finite(self, steps_ago: int = 0) -> None:
        """Count the pending step (``steps_ago`` before ``self.step``) if it was skipped for a
        non-finite loss; stop after too many."""
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
                f"{self.nonfinite_streak} steps in a row (up to step {self.step - steps_ago}) had "
                "a non-finite loss or gradients and were skipped; stopping. The last good "
                "checkpoint is "
                f"{'step ' + str(latest) if latest is not None else 'none'}; "
                "lower train.lr or check the data"
            )

    def _mixture_dict(self, mixture: np.ndarray | None = None) -> dict[str, float]:
        mixture = self.mixture if mixture is None else mixture
        return {n: round(float(p), 6) for n, p in zip(self.arm_names, mixture, strict=True)}

    def realised_mixture(self) -> np.ndarray | None:
        """Each arm's share of the target tokens trained since the last evaluation (all hosts).

        None before any token was trained. ``run_steps`` starts a new interval, so under
        ``curriculum.MixtureEnv`` this is the mixture its last action really trained.
        """
        return self.birdie.realised_mixture()

    def run_steps(self, n: int, mixture: np.ndarray) -> None:
        """Train ``n`` steps with ``mixture`` (the MixtureEnv backing); a new realised interval."""
        self.birdie.set_mixture(mixture)
        for _ in range(n):
            self.train_one()

    def validate(self) -> np.ndarray:
        """Mean validation loss per arm on the fixed held-out set."""
        # Dispatch every batch, then fetch all results in one transfer.
        results = jax.device_get(
            [
                [self.run.eval_step(self.run.params, b) for b in batches]
                for batches in self.run.val_arrays
            ]
        )
        losses = np.zeros(len(self.arm_names))
        for i, per_batch in enumerate(results):
            total = sum(float(sums[i]) for sums, _ in per_batch)
            count = sum(float(counts[i]) for _, counts in per_batch)
            losses[i] = total / count if count else np.nan
        return losses

    def evaluate_and_adapt(self) -> np.ndarray:
        """Validate, report the losses to Birdie (its controller chooses the next mixture), log
        the record, call ``on_eval``.

        The controller is credited with the mixture realised since the last evaluation (each
        arm's share of the target tokens trained), not the one it asked for; the record holds
        both (``requested_mixture``, ``realised_mixture``) beside the next ``mixture``.
        """
        losses = self.validate()
        self.birdie.report(self.step, dict(zip(self.arm_names, losses.tolist(), strict=True)))
        record = self.birdie.history[-1]
        self.metrics.write(
            {"kind": "eval", **{k: v for k, v in record.items() if k not in ("reward", "skipped")}}
        )
        for hook in self.hooks.on_eval:
            hook(self, losses)
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
            "logged_tokens": self.logged_tokens.tolist(),
            "birdie": self.birdie.state_dict(),
            "arms": self.arm_names,
            "config": self.config.model_dump(mode="json"),
        }
        self.checkpointer.save(self.step, self.state, meta)
        for hook in self.hooks.on_checkpoint:
            hook(self, self.step)

    def restore(self, step: int | None = None, *, allow_lr_change: bool = False) -> None:
        """Continue from a checkpoint of this run (the latest by default). A checkpoint of
        another model or mixture, a damaged one, a ``train.steps`` below its step, or a config
        that moves its learning rate (unless ``allow_lr_change``) is refused, changing nothing."""
        # The model is compared before any array is read: a restore into the wrong shapes would
        # only be reported as damage.
        state, meta = self.checkpointer.restore(self.state, step, check=self._check_compatible)
        step, steps = int(meta["step"]), self.config.train.steps
        if steps < step:
            raise BirdieError(
                f"train.steps {steps} is below step {step}, where the run's checkpoint is: a "
                f"resumed run trains on, so give train.steps >= {step} (or continue from an "
                "earlier checkpoint with --resume-from STEP)"
            )
        self._check_schedule(meta, step, allow_lr_change)
        self.birdie.load_state_dict(meta["birdie"])  # refuses other data settings, changing nothing
        self.state = state
        self.step, self.tokens_seen = step, int(meta["tokens_seen"])
        self.nonfinite_total = int(meta["nonfinite_total"])
        self._window = list(meta["loss_window"])
        self.logged_tokens = np.asarray(meta["logged_tokens"], dtype=np.int64)
        self.metrics.truncate_after(self.step)

    def _check_schedule(self, meta: dict[str, Any], step: int, allow_lr_change: bool) -> None:
        """Refuse (or, when allowed, note in ``lr_change``) a config that moves the learning rate
        of the steps still to come away from the schedule the run was trained with."""
        try:
            old = TrainConfig.model_validate(meta["config"]["train"])
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(["train", *map(str, error["loc"])])
            raise BirdieError(
                f"checkpoint {step}'s {key} is not valid here ({error_text(error)}), so its "
                "learning-rate schedule cannot be checked; resume with the version that wrote it"
            ) from None
        new = self.config.train
        before, after = float(learning_rate(old)(step)), float(learning_rate(new)(step))
        if math.isclose(before, after, rel_tol=1e-6, abs_tol=1e-12):
            return
        if allow_lr_change:
            self.lr_change = (before, after)
            return
        changed = ", ".join(
            f"train.{k} {getattr(old, k)} -> {getattr(new, k)}"
            for k in diff_keys(old, new)
            if k in SCHEDULE_KEYS
        )
        if old.schedule == "wsd" and step > decay_start(old):
            how = (f"step {step} is in the decay of this wsd schedule (from step "
                   f"{decay_start(old)}): extend from a checkpoint before it with "
                   f"--resume-from")  # fmt: skip
        elif new.schedule == "cosine":
            how = ("the cosine schedule is fitted to train.steps; train with "
                   "train.schedule=wsd to extend runs (its stable phase lengthens)")  # fmt: skip
        else:
            how = "keep the schedule's settings"
        raise BirdieError(
            f"{changed or 'this config'} would move the learning rate at step {step} from "
            f"{before:.3g} to {after:.3g}; {how}, or pass --allow-lr-change to continue anyway"
        )

    def _check_compatible(self, meta: dict[str, Any]) -> None:
        """Refuse a checkpoint whose model or arms differ from this config's, saying how."""
        saved = meta.get("config", {}).get("model", {})
        current = run_identity(self.config.model, "model")
        diffs = [
            f"model.{k}: checkpoint {saved.get(k)!r}, config {current[k]!r}"
            for k in current
            if k in saved and saved[k] != current[k]
        ]
        if meta.get("arms") != self.arm_names:
            diffs.append(f"arms: checkpoint {meta.get('arms')}, config {self.arm_names}")
        if diffs:
            raise BirdieError(
                f"checkpoint {meta.get('step')} does not match this config ({'; '.join(diffs)})"
            )

    # -- signals, progress text, closing -------------------------------------------------------

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
        self.birdie.close()
        self.checkpointer.close()
