"""Sequential scan over the batch-major array in place: the fast path on CPU.

A fori_loop walks time and reads/writes one [batch, 1, dim] slice of the [batch, length, dim]
arrays per step, so there is no transpose to time-major and back (on CPU the transposes cost
more than the scan); it steps one row per iteration, as unrolled loops ran slower on CPU. The
backward loop fuses the elementwise parts of
the VJP (da = g * h_prev, the shifted decay) into the reverse scan, so it reads a, h, dh once
and writes da, db once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from birdie_ssm.kernels.vjp import carry_dtype, with_scan_vjp


def _read(x: jax.Array, t: jax.Array) -> jax.Array:
    return jax.lax.dynamic_slice_in_dim(x, t, 1, axis=1)


def _write(x: jax.Array, value: jax.Array, t: jax.Array) -> jax.Array:
    return jax.lax.dynamic_update_slice_in_dim(x, value.astype(x.dtype), t, axis=1)


def _time(i: jax.Array, length: int, reverse: bool) -> jax.Array:
    return length - 1 - i if reverse else i


def forward(a: jax.Array, b: jax.Array, h0: jax.Array, reverse: bool) -> jax.Array:
    """h_t = a_t * h_{t-1} + b_t over axis 1 of [batch, length, dim]; float32 (or complex64)
    carry."""
    length, dtype = a.shape[1], carry_dtype(b)

    def step(i, carry):
        h, out = carry
        t = _time(i, length, reverse)
        h = _read(a, t).astype(dtype) * h + _read(b, t).astype(dtype)
        return h, _write(out, h, t)

    init = (h0[:, None, :], jnp.empty_like(b))
    return jax.lax.fori_loop(0, length, step, init)[1]


def backward(
    a: jax.Array, h: jax.Array, h0: jax.Array, dh: jax.Array, reverse: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cotangents (da, db, dh0) of ``forward``: one fused loop in the opposite direction."""
    length, dtype = a.shape[1], carry_dtype(h)
    h0 = h0[:, None, :]
    # A forward scan's step t needs h_{t-1}; at the sequence's first step that is h0.
    first = length - 1 if reverse else 0
    offset = 1 if reverse else -1

    def step(i, carry):
        # carry = a_{t+1} * g_{t+1}: the decayed cotangent flowing back from the next step.
        flow, da, db = carry
        t = _time(i, length, not reverse)
        g = _read(dh, t).astype(dtype) + flow
        neighbour = jnp.clip(t + offset, 0, length - 1)
        h_prev = jnp.where(t == first, h0, _read(h, neighbour).astype(dtype))
        flow = _read(a, t).astype(dtype) * g
        return flow, _write(da, g * h_prev, t), _write(db, g, t)

    init = (jnp.zeros_like(h0), jnp.empty_like(a), jnp.empty_like(h))
    dh0, da, db = jax.lax.fori_loop(0, length, step, init)
    return da, db, dh0[:, 0, :]


scan = with_scan_vjp(forward, backward)
