"""Jitted train and eval steps over a functional (graphdef, params) view of the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Metrics = dict[str, jax.Array]


def token_losses(
    graphdef: nnx.GraphDef, params: nnx.State, batch: dict[str, jax.Array]
) -> jax.Array:
    """Per-token cross-entropy ``[batch, length]`` (unmasked)."""
    model = nnx.merge(graphdef, params)
    logits = model(
        batch["input_ids"], prefix_mask=batch["prefix_mask"], segment_ids=batch["segment_ids"]
    )
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["target_ids"])


def arm_sums(
    nll: jax.Array, batch: dict[str, jax.Array], num_arms: int
) -> tuple[jax.Array, jax.Array]:
    """Masked loss sums and token counts per arm, ``[num_arms]`` each."""
    mask = batch["loss_mask"].astype(jnp.float32)
    onehot = jax.nn.one_hot(batch["arm_ids"], num_arms, dtype=jnp.float32)  # -1 → all zeros
    sums = jnp.einsum("bl,bla->a", nll * mask, onehot)
    counts = jnp.einsum("bl,bla->a", mask, onehot)
    return sums, counts


def micro_batches(batch: dict[str, jax.Array], k: int) -> dict[str, jax.Array]:
    """``[batch, ...]`` arrays as ``[k, batch / k, ...]``: micro-batch j takes rows j, j + k, ...,
    so each device's block of rows splits among the micro-batches without moving."""
    return jax.tree.map(lambda x: x.reshape(-1, k, *x.shape[1:]).swapaxes(0, 1), batch)


def accumulated_value_and_grad(
    graphdef: nnx.GraphDef, k: int
) -> Callable[[nnx.State, dict[str, jax.Array]], tuple[tuple[jax.Array, jax.Array], nnx.State]]:
    """``f(params, batch) -> ((loss, nll), grads)`` as ``jax.value_and_grad`` of the batch's
    mean masked loss gives, summed over ``k`` micro-batches in a scan: activation memory is
    one micro-batch's. Losses are summed, not averaged per micro-batch, then divided by the
    batch's loss tokens, so the update equals the one-batch update."""

    def summed(params, micro):
        nll = token_losses(graphdef, params, micro)
        return jnp.sum(nll * micro["loss_mask"].astype(jnp.float32)), nll

    grad_fn = jax.value_and_grad(summed, has_aux=True)

    def value_and_grad(params, batch):
        def body(carry, micro):
            total, grads = carry
            (loss_sum, nll), micro_grads = grad_fn(params, micro)
            return (total + loss_sum, jax.tree.map(jnp.add, grads, micro_grads)), nll

        zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        (total, grads), nll = jax.lax.scan(body, zeros, micro_batches(batch, k))
        count = jnp.maximum(batch["loss_mask"].astype(jnp.float32).sum(), 1.0)
        nll = nll.swapaxes(0, 1).reshape(batch["loss_mask"].shape)  # rows back in batch order
        return (total / count, nll), jax.tree.map(lambda g: g / count, grads)

    return value_and_grad


def all_finite(tree: Any) -> jax.Array:
    """Whether every floating-point value in ``tree`` is finite (a scalar bool)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.bool_(True), *(jnp.isfinite(x).all() for x in leaves)]))


def guarded_update(
    finite: jax.Array, new: tuple[nnx.State, Any], old: tuple[nnx.State, Any]
) -> tuple[jax.Array, tuple[nnx.State, Any]]:
    """``new`` (params, optimizer state) when ``finite`` and every value of ``new`` is finite,
    else ``old``; with whether ``new`` was taken. An update that overflows (or starts from a
    state already holding NaN) is never kept."""
    ok = finite & all_finite(new)
    return ok, jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def make_train_step(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    num_arms: int,
    state_shardings: tuple[Any, Any] | None = None,
    grad_accum: int = 1,
) -> Callable[..., tuple[nnx.State, Any, Metrics]]:
    """``step(params, opt_state, batch) -> (params, opt_state, metrics)``, jitted and donating.

    A step whose loss or gradients are not finite, or whose updated params or optimizer state
    are not, leaves both unchanged (``metrics["finite"]`` is False); the trainer counts such
    steps. ``grad_accum`` > 1 computes the gradient of the same batch in that many micro-batches
    (``accumulated_value_and_grad``).
    """

    def loss_fn(params, batch):
        nll = token_losses(graphdef, params, batch)
        mask = batch["loss_mask"].astype(jnp.float32)
        loss = jnp.sum(nll * mask) / jnp.maximum(mask.sum(), 1.0)
        return loss, nll

    value_and_grad = (
        jax.value_and_grad(loss_fn, has_aux=True)
        if grad_accum == 1
        else accumulated_value_and_grad(graphdef, grad_accum)
    )

    def step(params, opt_state, batch):
        (loss, nll), grads = value_and_grad(params, batch)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        finite, (params, opt_state) = guarded_update(
            finite, (new_params, new_opt_state), (params, opt_state)
        )
        sums, counts = arm_sums(jax.lax.stop_gradient(nll), batch, num_arms)
        metrics = {
            "loss": loss,
            "finite": finite,
            "grad_norm": grad_norm,
            "arm_loss_sums": sums,
            "arm_counts": counts,
        }
        return params, opt_state, metrics

    out_shardings = None if state_shardings is None else (*state_shardings, None)
    return jax.jit(step, donate_argnums=(0, 1), out_shardings=out_shardings)


def make_eval_step(
    graphdef: nnx.GraphDef, num_arms: int
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """``eval(params, batch) -> (loss sums, token counts)`` per arm, jitted."""

    def step(params, batch):
        return arm_sums(token_losses(graphdef, params, batch), batch, num_arms)

    return jax.jit(step)
