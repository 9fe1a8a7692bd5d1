"""Birdie's gated SSM mixer (``gated``): h_t = f*h_{t-1} + i*z, y = W_out(GeLU(W_o x) * h)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import check_range
from birdie_ssm.models.layers import dense
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
class GatedConfig(MixerConfig):
    """Parameters of the gated SSM."""

    state_expansion: int = 1  # recurrent width / model width

    def __post_init__(self) -> None:
        check_range("state_expansion", self.state_expansion, 1, 16, integer=True)

    def check(self, model: ModelConfig) -> None:
        check_even_split("gated", model, self.state_expansion)


@register_mixer("gated")
class GatedSSM(Mixer):
    """Gated linear recurrence, optionally bidirectional over the prefix (channel halves)."""

    Config = GatedConfig

    def __init__(
        self, config: ModelConfig, params: GatedConfig, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        width, dim = config.width, config.width * params.state_expansion
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

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        a, b, o = self._gates(x)
        a = jnp.where(keep_mask(ctx, self.dim, self.bidirectional), a, 0.0)
        h, h_last = scan(a, b, self.bidirectional, self.impl)
        return self.out(o * h), {"h": h_last}

    def step(self, x: jax.Array, cache: State, ctx: StepContext) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state)."""
        a, b, o = self._gates(x)
        a = jnp.where(step_keep(x.shape[0], self.dim, self.bidirectional), a, 0.0)
        h, h_fwd = step_scan(a, b, cache["h"], self.bidirectional)
        return self.out(o * h), {"h": h_fwd}
