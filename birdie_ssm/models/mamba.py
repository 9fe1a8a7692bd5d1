"""Mamba's selective SSM (``mamba``, S6; Gu & Dao 2023): input-dependent Δ, B, C, N states per
channel.

    x, z = W_in u;  x = SiLU(conv(x));  Δ = softplus(W_Δ (W_r x) + b_Δ);  B, C = W_B x, W_C x
    h_t = exp(Δ_t A) ⊙ h_{t-1} + (Δ_t x_t) B_t^T        (A = -exp(A_log), [channels, N])
    y_t = h_t C_t + D ⊙ x_t;  out = W_out(y ⊙ SiLU(z))

A is discretized by zero-order hold and B by Δ·B, as the paper's implementation does. The
[B, L, channels, N] states are scanned chunk by chunk (``recurrent.chunked_scan``): only one
chunk's exist at a time, when training, at prefill and never when decoding one token at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import check_range
from birdie_ssm.models.layers import ShortConv, dense
from birdie_ssm.models.masks import SeqContext, StepContext
from birdie_ssm.models.recurrent import (
    State,
    check_even_split,
    chunked_halves,
    keep_mask,
    log_uniform,
    step_keep,
    step_scan,
)
from birdie_ssm.models.registry import Mixer, MixerConfig, register_mixer


@dataclass(frozen=True)
class MambaConfig(MixerConfig):
    """Parameters of the Mamba block (the paper's defaults)."""

    state_size: int = 16  # N: states per channel
    expand: int = 2  # channels / model width
    conv_width: int = 4  # taps of the causal depthwise convolution
    dt_rank: int = 0  # rank of Δ's projection; 0: ceil(width / 16)
    dt_min: float = 0.001  # Δ starts log-uniform in [dt_min, dt_max]
    dt_max: float = 0.1
    chunk: int = 128  # positions whose [B, chunk, channels, N] states exist at once

    def __post_init__(self) -> None:
        check_range("state_size", self.state_size, 1, 256, integer=True)
        check_range("expand", self.expand, 1, 16, integer=True)
        check_range("conv_width", self.conv_width, 1, 16, integer=True)
        check_range("dt_rank", self.dt_rank, 0, 65536, integer=True)
        check_range("dt_min", self.dt_min, 0.0, 1.0, open_low=True)
        check_range("dt_max", self.dt_max, self.dt_min, 10.0, open_low=True)
        check_range("chunk", self.chunk, 1, 65536, integer=True)

    def check(self, model: ModelConfig) -> None:
        check_even_split("mamba", model, self.expand, "model.width * model.mixers.mamba.expand")


@register_mixer("mamba")
class Mamba(Mixer):
    """Selective SSM after a short conv, gated by SiLU(z); bidirectional by channel halves."""

    Config = MambaConfig

    def __init__(
        self, config: ModelConfig, params: MambaConfig, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        width, channels, n = config.width, config.width * params.expand, params.state_size
        rank = params.dt_rank or math.ceil(width / 16)
        dtype = jnp.dtype(config.dtype)
        self.channels, self.state_size, self.rank = channels, n, rank
        self.bidirectional, self.impl, self.chunk = bidirectional, config.scan_impl, params.chunk
        self.in_proj = dense(width, 2 * channels, dtype, rngs)
        self.conv = ShortConv(channels, params.conv_width, rngs)
        self.x_proj = dense(channels, rank + 2 * n, dtype, rngs)
        std = rank**-0.5
        dt_proj = jax.random.uniform(rngs.params(), (rank, channels), minval=-std, maxval=std)
        self.dt_proj = nnx.Param(dt_proj)
        # softplus(dt_bias) = Δ at initialisation, log-uniform in [dt_min, dt_max].
        dt = log_uniform(rngs.params(), (channels,), params.dt_min, params.dt_max)
        self.dt_bias = nnx.Param(dt + jnp.log(-jnp.expm1(-dt)))
        # S4D-Real: A[:, n] = -(n + 1).
        a = jnp.tile(jnp.arange(1, n + 1, dtype=jnp.float32), (channels, 1))
        self.a_log = nnx.Param(jnp.log(a))
        self.d = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.out = dense(channels, width, dtype, rngs, scale=1.0 / config.depth)
        # Training FLOPs per token of the scan (flops.py): per state, forward ΔA, Δx·B, a*h + b
        # and the read-out C·h, 6 FLOPs, three times over with the backward pass.
        self.recurrence_flops = 18 * channels * n

    def _inputs(self, x: jax.Array) -> tuple[jax.Array, ...]:
        """Δ [.., C] float32, B, C [.., N] float32 from the conv output x."""
        dt, b, c = jnp.split(self.x_proj(x), [self.rank, self.rank + self.state_size], axis=-1)
        dt = dt.astype(jnp.float32) @ self.dt_proj[...]
        delta = jax.nn.softplus(dt + self.dt_bias[...])
        return delta, b.astype(jnp.float32), c.astype(jnp.float32)

    @staticmethod
    def _build(inputs, a):
        (delta, x, keep), (b, _) = inputs
        decay = jnp.exp(delta[..., None] * a) * keep[..., None]
        return decay, (delta * x)[..., None] * b[..., None, :]

    @staticmethod
    def _read(h, inputs, a):
        del a
        return jnp.einsum("btcn,btn->btc", h, inputs[1][1])

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        u, z = jnp.split(self.in_proj(x), 2, axis=-1)
        u, conv_cache = self.conv(u, ctx.segment_ids)
        u = jax.nn.silu(u)
        delta, b, c = self._inputs(u)
        keep = keep_mask(ctx, self.channels, self.bidirectional)
        a = -jnp.exp(self.a_log[...])
        y, h_last = chunked_halves(
            self._build,
            self._read,
            (delta, u.astype(jnp.float32), keep.astype(jnp.float32)),
            (b, c),
            a,
            self.bidirectional,
            impl=self.impl,
            chunk=self.chunk,
        )
        y = y + self.d[...] * u.astype(jnp.float32)
        return self.out(y.astype(x.dtype) * jax.nn.silu(z)), {"h": h_last, "conv": conv_cache}

    def step(self, x: jax.Array, cache: State, ctx: StepContext) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state); the state is [B, C*N]."""
        u, z = jnp.split(self.in_proj(x), 2, axis=-1)
        u, conv_cache = self.conv.step(u, cache["conv"])
        u = jax.nn.silu(u)
        delta, b, c = self._inputs(u)
        a = jnp.exp(delta[..., None] * -jnp.exp(self.a_log[...]))
        bx = (delta * u.astype(jnp.float32))[..., None] * b[:, None, :]
        size = self.channels * self.state_size
        a = jnp.where(step_keep(x.shape[0], size, self.bidirectional), a.reshape(-1, size), 0.0)
        h, h_fwd = step_scan(a, bx.reshape(-1, size), cache["h"], self.bidirectional)
        h = h.astype(jnp.float32).reshape(-1, self.channels, self.state_size)
        y = jnp.einsum("bcn,bn->bc", h, c) + self.d[...] * u.astype(jnp.float32)
        return self.out(y.astype(x.dtype) * jax.nn.silu(z)), {"h": h_fwd, "conv": conv_cache}
