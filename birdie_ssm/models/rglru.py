"""Hawk's recurrent mixer (``rglru``): GeLU gate branch times (short conv -> RG-LRU) branch."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import check_range
from birdie_ssm.models.layers import ShortConv, dense, sqrt_bounded
from birdie_ssm.models.masks import SeqContext, StepContext
from birdie_ssm.models.recurrent import (
    State,
    check_even_split,
    keep_mask,
    scan,
    step_keep,
    step_scan,
)
from birdie_ssm.models.registry import Mixer, MixerConfig, register_mixer


@dataclass(frozen=True)
class RGLRUConfig(MixerConfig):
    """Parameters of the RG-LRU block."""

    state_expansion: int = 1  # recurrent width / model width
    conv_width: int = 4  # taps of the causal short convolution

    def __post_init__(self) -> None:
        check_range("state_expansion", self.state_expansion, 1, 16, integer=True)
        check_range("conv_width", self.conv_width, 1, 16, integer=True)

    def check(self, model: ModelConfig) -> None:
        check_even_split("rglru", model, self.state_expansion)


@register_mixer("rglru")
class RGLRU(Mixer):
    """Real-gated linear recurrent unit after a short conv, optionally bidirectional."""

    Config = RGLRUConfig

    def __init__(
        self, config: ModelConfig, params: RGLRUConfig, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        width, dim = config.width, config.width * params.state_expansion
        dtype = jnp.dtype(config.dtype)
        self.dim, self.bidirectional, self.impl = dim, bidirectional, config.scan_impl
        self.proj = dense(width, 2 * dim, dtype, rngs)
        self.conv = ShortConv(dim, params.conv_width, rngs)
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

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        gate, u = jnp.split(self.proj(x), 2, axis=-1)
        u, conv_cache = self.conv(u, ctx.segment_ids)
        a, b = self._lru_inputs(u, keep_mask(ctx, self.dim, self.bidirectional))
        h, h_last = scan(a, b, self.bidirectional, self.impl)
        return self.out(jax.nn.gelu(gate) * h), {"h": h_last, "conv": conv_cache}

    def step(self, x: jax.Array, cache: State, ctx: StepContext) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state)."""
        gate, u = jnp.split(self.proj(x), 2, axis=-1)
        u, conv_cache = self.conv.step(u, cache["conv"])
        a, b = self._lru_inputs(u, step_keep(x.shape[0], self.dim, self.bidirectional))
        h, h_fwd = step_scan(a, b, cache["h"], self.bidirectional)
        return self.out(jax.nn.gelu(gate) * h), {"h": h_fwd, "conv": conv_cache}
