"""What the recurrent mixers share: keep masks, bidirectional scans and their one-step forms.

A bidirectional mixer scans the first half of its recurrent channels forward over the packed row
and the second half in reverse, with the reverse decay forced to 0 wherever the next position is
not in the same prefix, so no position reads a target or another segment through it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from birdie_ssm.kernels import linear_scan
from birdie_ssm.models.masks import SeqContext

State = dict[str, jax.Array]


def keep_mask(ctx: SeqContext, dim: int, bidirectional: bool) -> jax.Array:
    """[B, L, dim] bool: where the decay a survives (forward half resets, reverse half bounds)."""
    fwd = ctx.fwd_keep[..., None]
    if not bidirectional:
        return jnp.broadcast_to(fwd, (*fwd.shape[:2], dim))
    half = dim // 2
    rev = ctx.rev_keep[..., None]
    shape = (*fwd.shape[:2], half)
    return jnp.concatenate([jnp.broadcast_to(fwd, shape), jnp.broadcast_to(rev, shape)], axis=-1)


def step_keep(batch: int, dim: int, bidirectional: bool) -> jax.Array:
    """Decode-time keep mask: a generated token is a target, so the reverse half sees only
    itself."""
    keep = np.ones((batch, dim), bool)
    if bidirectional:
        keep[:, dim // 2 :] = False
    return jnp.asarray(keep)


def scan(a: jax.Array, b: jax.Array, bidirectional: bool, impl: str) -> tuple[jax.Array, jax.Array]:
    """Run the recurrence; return all states and the forward half's last state (decode state)."""
    if not bidirectional:
        h = linear_scan(a, b, impl=impl)
        return h, h[:, -1].astype(jnp.float32)
    half = a.shape[-1] // 2
    h_fwd = linear_scan(a[..., :half], b[..., :half], impl=impl)
    h_rev = linear_scan(a[..., half:], b[..., half:], reverse=True, impl=impl)
    return jnp.concatenate([h_fwd, h_rev], axis=-1), h_fwd[:, -1].astype(jnp.float32)


def step_scan(
    a: jax.Array, b: jax.Array, h: jax.Array, bidirectional: bool
) -> tuple[jax.Array, jax.Array]:
    """One recurrence step from the forward state h; the reverse half restarts at every target."""
    b32 = b.astype(jnp.float32)
    if not bidirectional:
        h = a * h + b32
        return h.astype(b.dtype), h
    half = a.shape[-1] // 2
    h = a[:, :half] * h + b32[:, :half]
    return jnp.concatenate([h, b32[:, half:]], axis=-1).astype(b.dtype), h


def check_even_split(name: str, model, state_expansion: int) -> None:
    """A bidirectional layer splits its channels in two halves: their number must be even."""
    if model.bidirectional != "none" and (model.width * state_expansion) % 2:
        raise ValueError(
            f"model.width * model.mixers.{name}.state_expansion must be even to split a "
            "bidirectional layer's channels into a forward and a reverse half"
        )
