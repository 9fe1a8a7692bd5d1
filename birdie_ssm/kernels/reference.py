"""Reference linear recurrence: a time-major lax.scan, the oracle for the fast kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from birdie_ssm.kernels.vjp import carry_dtype, shifted_backward, with_scan_vjp


def forward(a: jax.Array, b: jax.Array, h0: jax.Array, reverse: bool) -> jax.Array:
    """h_t = a_t * h_{t-1} + b_t over axis 1 of [batch, length, dim]; float32 (or complex64)
    carry."""
    carry = carry_dtype(b)

    def step(h, ab):
        a_t, b_t = ab
        h = a_t.astype(carry) * h + b_t.astype(carry)
        return h, h.astype(b.dtype)

    xs = (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1))
    _, hs = jax.lax.scan(step, h0, xs, reverse=reverse)
    return jnp.swapaxes(hs, 0, 1)


scan = with_scan_vjp(forward, shifted_backward(forward))
