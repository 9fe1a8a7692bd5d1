"""Temporal mixers of the SSM: Birdie's gated SSM and Hawk's RG-LRU, both optionally bidirectional.

A bidirectional mixer scans the first half of its recurrent channels forward over the packed row
and the second half in reverse, with the reverse decay forced to 0 wherever the next position is
not in the same prefix (DESIGN.md, "Bidirectional-to-causal model").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.kernels import linear_scan
from birdie_ssm.models.layers import ShortConv, dense, sqrt_bounded
from birdie_ssm.models.masks import SeqMasks

State = dict[str, jax.Array]


def _keep_mask(masks: SeqMasks, dim: int, bidirectional: bool) -> jax.Array:
    """[B, L, dim] bool: where the decay a survives (forward half resets, reverse half bounds)."""
    fwd = masks.fwd_keep[..., None]
    if not bidirectional:
        return jnp.broadcast_to(fwd, (*fwd.shape[:2], dim))
    half = dim // 2
    rev = masks.rev_keep[..., None]
    shape = (*fwd.shape[:2], half)
    return jnp.concatenate([jnp.broadcast_to(fwd, shape), jnp.broadcast_to(rev, shape)], axis=-1)


def _step_keep(batch: int, dim: int, bidirectional: bool) -> jax.Array:
    """Decode-time keep mask: a generated token is a target, so the reverse half sees only itself."""
    keep = np.ones((batch, dim), bool)
    if bidirectional:
        keep[:, dim // 2 :] = False
    return jnp.asarray(keep)


def _scan(
    a: jax.Array, b: jax.Array, bidirectional: bool, impl: str
) -> tuple[jax.Array, jax.Array]:
    """Run the recurrence; return all states and the forward half's last state (decode state)."""
    if not bidirectional:
        h = linear_scan(a, b, impl=impl)
        return h, h[:, -1].astype(jnp.float32)
    half = a.shape[-1] // 2
    h_fwd = linear_scan(a[..., :half], b[..., :half], impl=impl)
    h_rev = linear_scan(a[..., half:], b[..., half:], reverse=True, impl=impl)
    return jnp.concatenate([h_fwd, h_rev], axis=-1), h_fwd[:, -1].astype(jnp.float32)


def _step_scan(
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


class GatedSSM(nnx.Module):
    """Birdie's gated SSM: h_t = f*h_{t-1} + i*z, y = W_out(GeLU(W_o x) * h)."""

    def __init__(self, config: ModelConfig, bidirectional: bool, *, rngs: nnx.Rngs):
        width, dim = config.width, config.width * config.state_expansion
        dtype = jnp.dtype(config.dtype)
        self.dim, self.bidirectional, self.impl = dim, bidirectional, config.scan_impl
        self.proj = dense(width, 4 * dim, dtype, rngs)
        # Forget gates start in [0.7, 0.97]: long enough memory to learn from, yet the
        # un-normalised input i*z is amplified at most ~30x by the recurrence.
        f0 = jax.random.uniform(rngs.params(), (dim,), jnp.float32, 0.7, 0.97)
        self.f_bias = nnx.Param(jnp.log(f0) - jnp.log1p(-f0))
        self.out = dense(dim, width, dtype, rngs, scale=1.0 / config.depth)

    def _gates(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        i, z, o, f = jnp.split(self.proj(x), 4, axis=-1)
        a = jax.nn.sigmoid(f.astype(jnp.float32) + self.f_bias[...])
        return a, jax.nn.sigmoid(i) * z, jax.nn.gelu(o)

    def __call__(self, x: jax.Array, masks: SeqMasks) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        a, b, o = self._gates(x)
        a = jnp.where(_keep_mask(masks, self.dim, self.bidirectional), a, 0.0)
        h, h_last = _scan(a, b, self.bidirectional, self.impl)
        return self.out(o * h), {"h": h_last}

    def step(self, x: jax.Array, state: State) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state)."""
        a, b, o = self._gates(x)
        a = jnp.where(_step_keep(x.shape[0], self.dim, self.bidirectional), a, 0.0)
        h, h_fwd = _step_scan(a, b, state["h"], self.bidirectional)
        return self.out(o * h), {"h": h_fwd}


class RGLRU(nnx.Module):
    """Hawk's recurrent block: GeLU gate branch times (short conv -> RG-LRU) branch."""

    def __init__(self, config: ModelConfig, bidirectional: bool, *, rngs: nnx.Rngs):
        width, dim = config.width, config.width * config.state_expansion
        dtype = jnp.dtype(config.dtype)
        self.dim, self.bidirectional, self.impl = dim, bidirectional, config.scan_impl
        self.proj = dense(width, 2 * dim, dtype, rngs)
        self.conv = ShortConv(dim, config.conv_width, rngs)
        self.gates = nnx.Linear(
            dim,
            2 * dim,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
            kernel_init=nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal"),
        )
        # Ring init: the base decay exp(-softplus(lam)) lies in [0.9, 0.999].
        a0 = jnp.sqrt(jax.random.uniform(rngs.params(), (dim,), jnp.float32, 0.9**2, 0.999**2))
        self.lam = nnx.Param(jnp.log(jnp.expm1(-jnp.log(a0))))
        self.out = dense(dim, width, dtype, rngs, scale=1.0 / config.depth)

    def _lru_inputs(self, u: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
        r, i = jnp.split(jax.nn.sigmoid(self.gates(u)), 2, axis=-1)
        log_a = -8.0 * r.astype(jnp.float32) * jax.nn.softplus(self.lam[...])
        a = jnp.where(keep, jnp.exp(log_a), 0.0)
        # Where a is forced to 0 (a reset) the input multiplier is exactly 1.
        mult = sqrt_bounded(jnp.where(keep, -jnp.expm1(2.0 * log_a), 1.0))
        return a, (mult * (i * u).astype(jnp.float32)).astype(u.dtype)

    def __call__(self, x: jax.Array, masks: SeqMasks) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        gate, u = jnp.split(self.proj(x), 2, axis=-1)
        u, conv_cache = self.conv(u, masks.segment_ids)
        a, b = self._lru_inputs(u, _keep_mask(masks, self.dim, self.bidirectional))
        h, h_last = _scan(a, b, self.bidirectional, self.impl)
        return self.out(jax.nn.gelu(gate) * h), {"h": h_last, "conv": conv_cache}

    def step(self, x: jax.Array, state: State) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state)."""
        gate, u = jnp.split(self.proj(x), 2, axis=-1)
        u, conv_cache = self.conv.step(u, state["conv"])
        a, b = self._lru_inputs(u, _step_keep(x.shape[0], self.dim, self.bidirectional))
        h, h_fwd = _step_scan(a, b, state["h"], self.bidirectional)
        return self.out(jax.nn.gelu(gate) * h), {"h": h_fwd, "conv": conv_cache}


def make_mixer(config: ModelConfig, bidirectional: bool, rngs: nnx.Rngs) -> GatedSSM | RGLRU:
    """The temporal mixer named by ``config.mixer``."""
    cls = {"gated": GatedSSM, "rglru": RGLRU}[config.mixer]
    return cls(config, bidirectional, rngs=rngs)


__all__ = ["GatedSSM", "RGLRU", "make_mixer"]
