"""The trainer: owns the loop, the pipeline, the controller, validation and checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from birdie_ssm.config import Config, dump_config
from birdie_ssm.data.corpus import make_source
from birdie_ssm.data.pipeline import open_pipeline, validation_batches
from birdie_ssm.data.tokenizer import make_tokenizer, padded_vocab_size
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model, count_params
from birdie_ssm.objectives import expand_arms
from birdie_ssm.rl import eval_steps, make_controller
from birdie_ssm.train.checkpoint import Checkpointer
from birdie_ssm.train.metrics import MetricsLog
from birdie_ssm.train.optim import learning_rate, make_optimizer
from birdie_ssm.train.steps import make_eval_step, make_train_step


def _controller_params(config: Config, weights: list[float]) -> dict[str, Any]:
    params = dict(config.controller.params)
    if config.controller.name == "fixed":
        params.setdefault("weights", weights)  # the mixture's own weights are the fixed mixture
    return params


class Trainer:
    """Trains one run in ``run_dir`` (config.yaml, metrics.jsonl, checkpoints/)."""

    def __init__(
        self, config: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True
    ) -> None:
        self.config, self.run_dir = config, Path(run_dir)
        data = config.data
        self.tokenizer = make_tokenizer(data)
        self.source = make_source(data)
        self.arms = expand_arms(config.objectives.mixture, self.tokenizer.specials, config.objectives.modules)
        self.arm_names = [a.name for a in self.arms]
        self.arm_classes = [a.objective_class for a in self.arms]

        vocab = config.model.vocab_size or padded_vocab_size(self.tokenizer)
        if vocab < self.tokenizer.vocab_size:
            raise BirdieError(
                f"model.vocab_size {vocab} is smaller than the tokenizer's {self.tokenizer.vocab_size}"
            )
        model = build_model(config.model, vocab, nnx.Rngs(config.train.seed))
        self.num_params = count_params(model)
        self.graphdef, self.params = nnx.split(model)
        self.optimizer = make_optimizer(config.train)
        self.opt_state = self.optimizer.init(self.params)
        self.lr = learning_rate(config.train)
        self.train_step = make_train_step(self.graphdef, self.optimizer, len(self.arms))
        self.eval_step = make_eval_step(self.graphdef, len(self.arms))

        self.controller = make_controller(
            config.controller.name,
            self.arm_names,
            self.arm_classes,
            reward=config.controller.reward,
            **_controller_params(config, [a.weight for a in self.arms]),
        )
        self.mixture = np.asarray(self.controller.initial_mixture(), dtype=np.float64)
        self.pipeline = open_pipeline(config, self.source, self.tokenizer, self.arms, self.mixture)
        self.val_sets = validation_batches(
            self.source.val,
            self.tokenizer,
            self.arms,
            seq_len=data.seq_len,
            batch_size=data.batch_size,
            batches_per_arm=data.val_batches_per_arm,
            seed=data.seed + 1,
        )
        self.step = 0
        self.tokens_seen = 0
        self.progress = progress and config.train.progress
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.checkpointer = Checkpointer(self.run_dir, config.train.keep_checkpoints)
        if resume:
            self.restore()
        else:
            dump_config(config, self.run_dir / "config.yaml")

    # -- the pieces a loop (or rl.MixtureEnv) drives -------------------------------------------

    def _mixture_dict(self) -> dict[str, float]:
        return {n: round(float(p), 6) for n, p in zip(self.arm_names, self.mixture, strict=True)}

    def set_mixture(self, mixture: np.ndarray) -> None:
        """Sample the coming batches from ``mixture`` (probabilities over arms)."""
        self.mixture = np.asarray(mixture, dtype=np.float64)
        self.pipeline.set_mixture(self.mixture)

    def train_one(self) -> dict[str, jax.Array]:
        """One optimisation step on the next batch; returns the step's (device) metrics."""
        batch = self.pipeline.next_batch()
        arrays = jax.device_put(batch.as_dict())
        self.params, self.opt_state, metrics = self.train_step(self.params, self.opt_state, arrays)
        self.step += 1
        self.tokens_seen += batch.input_ids.size
        return metrics

    def run_steps(self, n: int, mixture: np.ndarray) -> None:
        """Train ``n`` steps with ``mixture`` (the MixtureEnv backing)."""
        self.set_mixture(mixture)
        for _ in range(n):
            self.train_one()

    def validate(self) -> np.ndarray:
        """Mean validation loss per arm on the fixed held-out set."""
        losses = np.zeros(len(self.arms))
        for i, batches in enumerate(self.val_sets):
            total, count = 0.0, 0.0
            for batch in batches:
                sums, counts = self.eval_step(self.params, jax.device_put(batch.as_dict()))
                total += float(sums[i])
                count += float(counts[i])
            losses[i] = total / count if count else np.nan
        return losses

    def evaluate_and_adapt(self) -> np.ndarray:
        """Validate, let the controller choose the next mixture, and log both."""
        losses = self.validate()
        self.set_mixture(self.controller.update(self.step, losses))
        self.metrics.write(
            {
                "kind": "eval",
                "step": self.step,
                "val_loss": dict(zip(self.arm_names, losses.tolist(), strict=True)),
                "mixture": self._mixture_dict(),
                "controller": self.controller.info,
            }
        )
        return losses

    # -- checkpoints -------------------------------------------------------------------------

    def save(self) -> None:
        meta = {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "mixture": self.mixture.tolist(),
            "controller": self.controller.state_dict(),
            "pipeline": self.pipeline.state_dict(),
            "arms": self.arm_names,
            "config": self.config.model_dump(mode="json"),
        }
        self.checkpointer.save(self.step, {"params": self.params, "opt_state": self.opt_state}, meta)

    def restore(self, step: int | None = None) -> None:
        target = {"params": self.params, "opt_state": self.opt_state}
        state, meta = self.checkpointer.restore(target, step)
        if meta.get("arms") != self.arm_names:
            raise BirdieError(
                f"the checkpoint was trained with arms {meta.get('arms')}, "
                f"but this config has {self.arm_names}"
            )
        self.params, self.opt_state = state["params"], state["opt_state"]
        self.step, self.tokens_seen = int(meta["step"]), int(meta["tokens_seen"])
        self.controller.load_state_dict(meta["controller"])
        self.pipeline.load_state_dict(meta["pipeline"])
        self.set_mixture(np.asarray(meta["mixture"]))
        self.metrics.truncate_after(self.step)

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> dict[str, float]:
        """Train to ``train.steps``; returns the final validation loss per arm."""
        cfg = self.config.train
        evals = set(eval_steps(cfg.steps, self.config.eval.schedule, self.config.eval.every, self.config.eval.scale))
        losses = self.evaluate_and_adapt() if self.step == 0 else None
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        window: list[jax.Array] = []
        t0, tokens0 = time.perf_counter(), self.tokens_seen
        try:
            while self.step < cfg.steps:
                window.append(self.train_one()["loss"])
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    loss = float(np.mean(jax.device_get(window)))
                    elapsed = time.perf_counter() - t0
                    tps = (self.tokens_seen - tokens0) / max(elapsed, 1e-9)
                    if not np.isfinite(loss):
                        raise BirdieError(f"the training loss became {loss} at step {self.step}")
                    self.metrics.write(
                        {
                            "kind": "train",
                            "step": self.step,
                            "loss": loss,
                            "lr": float(self.lr(self.step - 1)),
                            "tokens_per_s": tps,
                            "mixture": self._mixture_dict(),
                        }
                    )
                    bar.set_postfix_str(f"loss {loss:.3f} | {tps:,.0f} tok/s | mix {self._mixture_text()}")
                    window, t0, tokens0 = [], time.perf_counter(), self.tokens_seen
                if self.step in evals:
                    losses = self.evaluate_and_adapt()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save()
        finally:
            bar.close()
            self.pipeline.close()
        if losses is None:
            losses = self.validate()
        return dict(zip(self.arm_names, losses.tolist(), strict=True))

    def _mixture_text(self) -> str:
        by_class: dict[str, float] = {}
        for cls, p in zip(self.arm_classes, self.mixture, strict=True):
            by_class[cls] = by_class.get(cls, 0.0) + float(p)
        return " ".join(f"{c[:6]}={p:.2f}" for c, p in by_class.items())

    def close(self) -> None:
        self.pipeline.close()
        self.checkpointer.close()
