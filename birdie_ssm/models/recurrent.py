"""What the recurrent mixers share: keep masks, bidirectional scans and their one-step forms,
the chunked scan of state-expanded SSMs, their GLU read-out and their initialisations.

A bidirectional mixer scans the first half of its recurrent channels forward over the packed row
and the second half in reverse, with the reverse decay forced to 0 wherever the next position is
not in the same prefix, so no position reads a target or another segment through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.kernels import carry_dtype, linear_scan
from birdie_ssm.models.layers import dense
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
        return h, h[:, -1].astype(carry_dtype(h))
    half = a.shape[-1] // 2
    h_fwd = linear_scan(a[..., :half], b[..., :half], impl=impl)
    h_rev = linear_scan(a[..., half:], b[..., half:], reverse=True, impl=impl)
    return jnp.concatenate([h_fwd, h_rev], axis=-1), h_fwd[:, -1].astype(carry_dtype(h_fwd))


def step_scan(
    a: jax.Array, b: jax.Array, h: jax.Array, bidirectional: bool
) -> tuple[jax.Array, jax.Array]:
    """One recurrence step from the forward state h; the reverse half restarts at every target."""
    b32 = b.astype(carry_dtype(b))
    if not bidirectional:
        h = a * h + b32
        return h.astype(b.dtype), h
    half = a.shape[-1] // 2
    h = a[:, :half] * h + b32[:, :half]
    return jnp.concatenate([h, b32[:, half:]], axis=-1).astype(b.dtype), h


def check_even_split(
    name: str,
    model,
    state_expansion: int,
    key: str = "model.width * model.mixers.{name}.state_expansion",
) -> None:
    """A bidirectional layer splits its channels in two halves: their number must be even."""
    if model.bidirectional != "none" and (model.width * state_expansion) % 2:
        raise ValueError(
            f"{key.format(name=name)} must be even to split a bidirectional layer's channels "
            "into a forward and a reverse half"
        )


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming parameter ``name`` unless it is one of ``choices``."""
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ValueError(f"parameter '{name}' must be one of {accepted}, got {value!r}")


def check_state_halves(name: str, model, state_size: int) -> None:
    """A complex state-space mixer's checks: a scan that carries complex values, and (in a
    bidirectional layer) a state that splits into forward and reverse halves."""
    check_complex_scan(name, model)
    if model.bidirectional != "none" and state_size % 2:
        raise ValueError(
            f"model.mixers.{name}.state_size must be even to split a bidirectional layer's states "
            "into a forward and a reverse half"
        )


def check_complex_scan(name: str, model) -> None:
    """A complex recurrence needs a scan implementation that can carry one (not the Pallas one)."""
    if model.scan_impl == "pallas":
        raise ValueError(
            f"model.scan_impl 'pallas' cannot carry the complex recurrence of mixer '{name}' "
            "(accepted: auto, sequential, associative, reference)"
        )


# Build (a, b), each [B, T, C, N], from one chunk's inputs and the parameters.
Build = Callable[[Any, Any], tuple[jax.Array, jax.Array]]
# Read y [B, T, C] from the chunk's states [B, T, C, N], its inputs and the parameters.
Read = Callable[[jax.Array, Any, Any], jax.Array]


def chunked_scan(
    build: Build, read: Read, seq: Any, params: Any, *, reverse: bool, impl: str, chunk: int
) -> tuple[jax.Array, jax.Array]:
    """h_t = a_t*h_{t-1} + b_t over a state of N per channel, ``chunk`` positions at a time.

    ``seq`` is a tree of [B, L, ...] inputs, ``params`` a tree the chunks share. Returns
    y [B, L, C] and the state after the scan's last step [B, C*N]. Only one chunk's
    [B, chunk, C, N] states exist at a time, in the backward pass too (a chunk's states are
    recomputed from its input state), so memory grows with L*C, not L*C*N.
    """
    leaves = jax.tree.leaves(seq)
    batch, length = leaves[0].shape[:2]
    chunk = min(chunk, length)
    count = -(-length // chunk)
    pad = count * chunk - length

    def split(x: jax.Array) -> jax.Array:
        x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
        return jnp.moveaxis(x.reshape(batch, count, chunk, *x.shape[2:]), 1, 0)

    valid = (jnp.arange(count * chunk) < length).reshape(count, chunk)

    @jax.checkpoint
    def body(h: jax.Array, inputs: tuple[Any, jax.Array]) -> tuple[jax.Array, jax.Array]:
        part, ok = inputs
        a, b = build(part, params)
        shape = a.shape
        if pad:  # padding carries the state through unchanged, in either direction
            ok = ok[None, :, None, None]
            a, b = jnp.where(ok, a, 1.0), jnp.where(ok, b, 0.0)
        flat = (batch, chunk, shape[2] * shape[3])
        hs = linear_scan(a.reshape(flat), b.reshape(flat), h0=h, reverse=reverse, impl=impl)
        last = hs[:, 0 if reverse else -1].astype(h.dtype)
        return last, read(hs.reshape(shape), part, params)

    first = jax.tree.map(lambda x: x[:, :chunk], seq)
    a, b = jax.eval_shape(build, first, params)
    h0 = jnp.zeros((batch, a.shape[2] * a.shape[3]), carry_dtype(b))
    last, ys = jax.lax.scan(body, h0, (jax.tree.map(split, seq), valid), reverse=reverse)
    y = jnp.moveaxis(ys, 0, 1).reshape(batch, count * chunk, *ys.shape[3:])
    return y[:, :length], last


def chunked_halves(
    build: Build,
    read: Read,
    channels: Any,
    shared: Any,
    params: Any,
    bidirectional: bool,
    *,
    impl: str,
    chunk: int,
) -> tuple[jax.Array, jax.Array]:
    """``chunked_scan`` with a bidirectional layer's halves: the first half of the channels scans
    forward, the second in reverse. ``channels`` leaves are [B, L, C, ...], ``params`` leaves
    [C, ...] (both split into halves), ``shared`` leaves [B, L, ...]; ``build`` and ``read`` get
    ``(channels, shared)`` chunks. Returns y [B, L, C] and the forward half's last state."""
    if not bidirectional:
        return chunked_scan(
            build, read, (channels, shared), params, reverse=False, impl=impl, chunk=chunk
        )
    half = jax.tree.leaves(params)[0].shape[0] // 2

    def part(tree: Any, axis: int, first: bool) -> Any:
        return jax.tree.map(
            lambda x: x[
                (slice(None),) * axis + (slice(None, half) if first else slice(half, None),)
            ],
            tree,
        )

    runs = [
        chunked_scan(
            build,
            read,
            (part(channels, 2, first), shared),
            part(params, 0, first),
            reverse=not first,
            impl=impl,
            chunk=chunk,
        )
        for first in (True, False)
    ]
    (y_fwd, last), (y_rev, _) = runs
    return jnp.concatenate([y_fwd, y_rev], axis=-1), last


class GLUReadout(nnx.Module):
    """The S4/S5/LRU layers' output: GeLU, then a gated linear unit back to the model width."""

    def __init__(self, dim: int, width: int, dtype: jnp.dtype, depth: int, rngs: nnx.Rngs):
        self.proj = dense(dim, 2 * width, dtype, rngs, scale=1.0 / depth)

    def __call__(self, y: jax.Array) -> jax.Array:
        value, gate = jnp.split(self.proj(jax.nn.gelu(y)), 2, axis=-1)
        return value * jax.nn.sigmoid(gate)


def log_uniform(key: jax.Array, shape: tuple[int, ...], low: float, high: float) -> jax.Array:
    """Samples with log uniform on [log low, log high] (the SSMs' step sizes Δ)."""
    u = jax.random.uniform(key, shape, jnp.float32)
    return jnp.exp(u * (math.log(high) - math.log(low)) + math.log(low))


def hippo_normal(size: int) -> np.ndarray:
    """The normal part of HiPPO-LegS, S = A + P P^T with P_n = sqrt(n + 1/2): -1/2 on the
    diagonal plus a skew-symmetric matrix (S4D-LegS's and S5's HiPPO-N initialisation)."""
    n = np.arange(size)
    q = np.sqrt(2 * n + 1.0)
    legs = -np.where(n[:, None] > n[None, :], np.outer(q, q), np.diag(n + 1.0))
    return legs + 0.5 * np.outer(q, q)


def hippo_modes(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of ``hippo_normal(2 * size)`` with non-negative imaginary part (one of each
    conjugate pair), by increasing frequency, and their eigenvectors [2 * size, size]."""
    values, vectors = np.linalg.eig(hippo_normal(2 * size))
    order = np.argsort(values.imag)[::-1][:size][::-1]
    return values[order], vectors[:, order]


def complex_param(x: jax.Array) -> jax.Array:
    """A complex array stored as real pairs on a last axis (optimizers, checkpoints see reals)."""
    return jnp.stack([x.real, x.imag], axis=-1).astype(jnp.float32)


def as_complex(p: jax.Array) -> jax.Array:
    """The complex array ``complex_param`` stored."""
    return jax.lax.complex(p[..., 0], p[..., 1])


def discretize(lam: jax.Array, dt: jax.Array, method: str) -> tuple[jax.Array, jax.Array]:
    """Continuous diagonal (lam, step dt) -> (lam_bar, the input factor B_bar / B).

    Zero-order hold: exp(dt*lam), (exp(dt*lam) - 1) / lam. Bilinear: (1 + dt*lam/2) /
    (1 - dt*lam/2), dt / (1 - dt*lam/2).
    """
    z = dt * lam
    if method == "zoh":
        lam_bar = jnp.exp(z)
        return lam_bar, (lam_bar - 1.0) / lam
    return (1.0 + z / 2) / (1.0 - z / 2), dt / (1.0 - z / 2)
