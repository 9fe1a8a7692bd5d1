"""The optimiser: AdamW with a learning-rate schedule and global-norm gradient clipping.

Two schedules (``train.schedule``), both with a linear warmup to ``lr`` and ending at
``lr * min_lr_ratio`` on the last step:

- ``cosine``: one cosine decay over the whole run. Its shape is fitted to ``train.steps``, so
  extending a run (more steps) moves the learning rate of every step after the warmup.
- ``wsd`` (warmup-stable-decay): ``lr`` held constant, then a cosine decay over the last
  ``decay_fraction`` of the steps. Extending a run from a step in its stable phase only
  lengthens that phase: the learning rate of every step trained so far stays as it was.
"""

from __future__ import annotations

import jax
import optax

from birdie_ssm.config import TrainConfig


def _warmup(config: TrainConfig) -> int:
    return min(config.warmup_steps, max(config.steps - 1, 0))


def decay_start(config: TrainConfig) -> int:
    """The first step of the final decay (the warmup's end for ``cosine``)."""
    warmup = _warmup(config)
    if config.schedule == "cosine":
        return warmup
    decay = max(1, round(config.decay_fraction * config.steps))
    return max(warmup, config.steps - decay)


def learning_rate(config: TrainConfig) -> optax.Schedule:
    """The learning rate at each step (optimizer update count) under ``train.schedule``."""
    warmup, end = _warmup(config), config.lr * config.min_lr_ratio
    if config.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=config.lr,
            warmup_steps=warmup,
            decay_steps=max(config.steps, warmup + 1),
            end_value=end,
        )
    start = decay_start(config)
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, config.lr, warmup),
            optax.constant_schedule(config.lr),
            optax.cosine_decay_schedule(
                config.lr, max(config.steps - start, 1), alpha=config.min_lr_ratio
            ),
        ],
        boundaries=[warmup, start],
    )


def _decay_mask(params):
    # Norm scales and biases (1-D per layer) are not decayed: decaying them only fights the
    # normalisation. Layers stacked for the scan over depth carry one more (leading) axis.
    def per_layer_ndim(path, p) -> int:
        stacked = any(getattr(key, "key", None) == "scanned" for key in path)
        return p.ndim - 1 if stacked else p.ndim

    return jax.tree_util.tree_map_with_path(lambda path, p: per_layer_ndim(path, p) >= 2, params)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """AdamW with the configured schedule, clipping and decoupled weight decay."""
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip),
        optax.adamw(
            learning_rate(config),
            b1=config.b1,
            b2=config.b2,
            weight_decay=config.weight_decay,
            mask=_decay_mask,
        ),
    )
