"""Custom VJP shared by every implementation: the backward pass is the scan run the other way.

For h_t = a_t * h_{t-1} + b_t with output cotangent dh, the cotangent g of h obeys
g_t = dh_t + a_{t+1} * g_{t+1}: the same recurrence in the opposite direction with the decays
shifted by one step. Then db = g, da_t = g_t * h_{t-1} and dh0 = a_0 * g_0 (mirrored for
``reverse=True``). No implementation is ever differentiated through its loop.

The same formulas hold for a complex recurrence (JAX's cotangents are transposes, not adjoints,
so nothing is conjugated): the carry is then complex64 instead of float32.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

# forward(a, b, h0, reverse) -> h in b's dtype; h0 is [batch, dim] in the carry dtype.
ScanForward = Callable[[jax.Array, jax.Array, jax.Array, bool], jax.Array]
# backward(a, h, h0, dh, reverse) -> (da, db, dh0), float32 or the inputs' dtypes.
ScanBackward = Callable[
    [jax.Array, jax.Array, jax.Array, jax.Array, bool], tuple[jax.Array, jax.Array, jax.Array]
]


def carry_dtype(x: jax.Array) -> jnp.dtype:
    """The scan's carry dtype for inputs like ``x``: complex64 if complex, else float32."""
    return jnp.dtype(jnp.complex64 if jnp.iscomplexobj(x) else jnp.float32)


def _shift(x: jax.Array, fill: jax.Array, toward_end: bool) -> jax.Array:
    """Move x one step along time; ``fill`` ([batch, dim]) enters at the vacated end."""
    fill = fill[:, None, :].astype(x.dtype)
    if toward_end:
        return jnp.concatenate([fill, x[:, :-1]], axis=1)
    return jnp.concatenate([x[:, 1:], fill], axis=1)


def shifted_backward(forward: ScanForward) -> ScanBackward:
    """Build the backward pass of ``forward`` from ``forward`` itself, run in the other
    direction."""

    def backward(a, h, h0, dh, reverse):
        zeros = jnp.zeros_like(h0)
        # Forward scans read a_{t+1} and h_{t-1}; reverse scans the mirror images.
        a_next = _shift(a, zeros, toward_end=reverse)
        h_prev = _shift(h, h0, toward_end=not reverse)
        carry = carry_dtype(h0)
        g = forward(a_next, dh.astype(carry), zeros, not reverse)
        edge = -1 if reverse else 0
        dh0 = a[:, edge].astype(carry) * g[:, edge]
        return g * h_prev.astype(carry), g, dh0

    return backward


def with_scan_vjp(forward: ScanForward, backward: ScanBackward) -> Callable[..., jax.Array]:
    """Wrap a forward/backward pair as ``scan(a, b, h0, reverse)`` with a custom VJP."""

    @partial(jax.custom_vjp, nondiff_argnums=(3,))
    def scan(a, b, h0, reverse):
        return forward(a, b, h0.astype(carry_dtype(b)), reverse)

    def scan_fwd(a, b, h0, reverse):
        h = forward(a, b, h0.astype(carry_dtype(b)), reverse)
        return h, (a, h, h0)

    def scan_bwd(reverse, residuals, dh):
        a, h, h0 = residuals
        da, db, dh0 = backward(a, h, h0.astype(carry_dtype(h)), dh, reverse)
        return da.astype(a.dtype), db.astype(h.dtype), dh0.astype(h0.dtype)

    scan.defvjp(scan_fwd, scan_bwd)
    return scan
