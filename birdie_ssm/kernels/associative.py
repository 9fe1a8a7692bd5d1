"""Linear recurrence as a parallel prefix: lax.associative_scan over (decay, value) pairs."""

from __future__ import annotations

import jax

from birdie_ssm.kernels.vjp import carry_dtype, shifted_backward, with_scan_vjp


def _combine(earlier, later):
    a_1, b_1 = earlier
    a_2, b_2 = later
    return a_1 * a_2, a_2 * b_1 + b_2


def forward(a: jax.Array, b: jax.Array, h0: jax.Array, reverse: bool) -> jax.Array:
    """h_t = a_t * h_{t-1} + b_t over axis 1 of [batch, length, dim]; float32 (or complex64)
    throughout."""
    a32 = a.astype(carry_dtype(b))
    b32 = b.astype(carry_dtype(b))
    # Folding h0 into the first value makes the prefix start from it.
    edge = -1 if reverse else 0
    b32 = b32.at[:, edge].add(a32[:, edge] * h0)
    _, h = jax.lax.associative_scan(_combine, (a32, b32), reverse=reverse, axis=1)
    return h.astype(b.dtype)


scan = with_scan_vjp(forward, shifted_backward(forward))
