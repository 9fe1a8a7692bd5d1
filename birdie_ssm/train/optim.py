"""The optimiser: AdamW with warmup + cosine decay and global-norm gradient clipping."""

from __future__ import annotations

import jax
import optax

from birdie_ssm.config import TrainConfig


def learning_rate(config: TrainConfig) -> optax.Schedule:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at the last step."""
    warmup = min(config.warmup_steps, max(config.steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.lr,
        warmup_steps=warmup,
        decay_steps=max(config.steps, warmup + 1),
        end_value=config.lr * config.min_lr_ratio,
    )


def _decay_mask(params):
    # Norm scales and biases (1-D) are not decayed: decaying them only fights the normalisation.
    return jax.tree.map(lambda p: p.ndim >= 2, params)


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
