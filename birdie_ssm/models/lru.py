"""The linear recurrent unit (``lru``; Orvieto et al. 2023): a complex diagonal recurrence with
ring initialisation and a normalising factor.

    λ = exp(-exp(ν_log) + i exp(θ_log)),  γ = exp(γ_log)     ([N] complex states)
    h_t = λ ⊙ h_{t-1} + γ ⊙ (B u_t);  y_t = Re(C h_t) + D ⊙ u_t;  out = GLU(GeLU(y))

At initialisation |λ|² is uniform on [r_min², r_max²] (uniform on the ring), the phase uniform on
[0, max_phase], and γ = sqrt(1 - |λ|²) keeps the state's variance that of the input. A segment
start sets λ to 0. Hawk's RG-LRU (``rglru``) descends from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import check_range
from birdie_ssm.models.masks import SeqContext, StepContext
from birdie_ssm.models.recurrent import (
    GLUReadout,
    State,
    as_complex,
    check_state_halves,
    keep_mask,
    scan,
    step_keep,
    step_scan,
)
from birdie_ssm.models.registry import Mixer, MixerConfig, register_mixer


@dataclass(frozen=True)
class LRUConfig(MixerConfig):
    """Parameters of the LRU."""

    state_size: int = 128  # N: complex states
    r_min: float = 0.9  # |λ| starts on the ring r_min <= |λ| <= r_max
    r_max: float = 0.999
    max_phase: float = 2 * math.pi  # arg λ starts uniform in [0, max_phase]

    def __post_init__(self) -> None:
        check_range("state_size", self.state_size, 2, 4096, integer=True)
        if (
            isinstance(self.r_min, bool)
            or not isinstance(self.r_min, int | float)
            or not (0.0 <= self.r_min < 1.0)
        ):
            raise ValueError(f"parameter 'r_min' must be a number in [0, 1), got {self.r_min!r}")
        check_range("r_max", self.r_max, self.r_min, 1.0 - 1e-9, open_low=True)
        check_range("max_phase", self.max_phase, 0.0, 2 * math.pi, open_low=True)

    def check(self, model: ModelConfig) -> None:
        check_state_halves("lru", model, self.state_size)


@register_mixer("lru")
class LRU(Mixer):
    """Complex diagonal linear recurrence, GLU read-out; bidirectional by state halves."""

    Config = LRUConfig

    def __init__(
        self, config: ModelConfig, params: LRUConfig, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        width, states = config.width, params.state_size
        self.states, self.bidirectional, self.impl = states, bidirectional, config.scan_impl
        u1, u2 = jax.random.uniform(rngs.params(), (2, states), jnp.float32)
        radius2 = u1 * (params.r_max**2 - params.r_min**2) + params.r_min**2
        self.nu_log = nnx.Param(jnp.log(-0.5 * jnp.log(radius2)))
        self.theta_log = nnx.Param(jnp.log(params.max_phase * u2))
        self.gamma_log = nnx.Param(0.5 * jnp.log1p(-radius2))
        b = jax.random.normal(rngs.params(), (states, width, 2), jnp.float32)
        self.b = nnx.Param(b * (2 * width) ** -0.5)
        c = jax.random.normal(rngs.params(), (width, states, 2), jnp.float32)
        self.c = nnx.Param(c * states**-0.5)
        self.d = nnx.Param(jax.random.normal(rngs.params(), (width,), jnp.float32))
        self.out = GLUReadout(width, width, jnp.dtype(config.dtype), config.depth, rngs)
        # Training FLOPs per token of the recurrence (flops.py): a complex multiply-add and the
        # γ scaling per state, 10 real FLOPs, three times over (B u and C h are counted as 6N).
        self.recurrence_flops = 30 * states

    def _lam(self) -> jax.Array:
        return jnp.exp(jax.lax.complex(-jnp.exp(self.nu_log[...]), jnp.exp(self.theta_log[...])))

    def _input(self, u: jax.Array) -> jax.Array:
        b = as_complex(self.b[...]) * jnp.exp(self.gamma_log[...])[:, None]
        return u.astype(jnp.complex64) @ b.T

    def _read(self, h: jax.Array, u: jax.Array) -> jax.Array:
        return self.out((h @ as_complex(self.c[...]).T).real + self.d[...] * u)

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        u = x.astype(jnp.float32)
        a = jnp.where(keep_mask(ctx, self.states, self.bidirectional), self._lam(), 0.0)
        h, h_last = scan(a, self._input(u), self.bidirectional, self.impl)
        return self._read(h, u).astype(x.dtype), {"h": h_last}

    def step(self, x: jax.Array, cache: State, ctx: StepContext) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state [B, N])."""
        u = x.astype(jnp.float32)
        a = jnp.where(step_keep(x.shape[0], self.states, self.bidirectional), self._lam(), 0.0)
        h, h_fwd = step_scan(a, self._input(u), cache["h"], self.bidirectional)
        return self._read(h, u).astype(x.dtype), {"h": h_fwd}
