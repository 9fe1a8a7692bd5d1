"""S5 (``s5``; Smith et al. 2023): one multi-input, multi-output diagonal SSM shared by all
channels.

    Λ = -exp(Λ_re_log) + i Λ_im, Δ = exp(log_dt)         ([P] complex states)
    Λ_bar, factor = discretize(Λ, Δ);  B_bar = factor ⊙ B~   ([P, width] complex)
    h_t = Λ_bar ⊙ h_{t-1} + B_bar u_t;  y_t = 2 Re(C~ h_t) + D ⊙ u_t;  out = GLU(GeLU(y))

Initialisation HiPPO-N: Λ are the eigenvalues of HiPPO-LegS's normal part (size 2P, one of each
conjugate pair kept), optionally as ``blocks`` independent blocks, and B~ = V^H B, C~ = C V with
V its eigenvectors. The recurrence over the P states runs on ``linear_scan``'s complex path (the
associative scan is the paper's; ``model.scan_impl: associative`` selects it).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import check_range
from birdie_ssm.models.masks import SeqContext, StepContext
from birdie_ssm.models.recurrent import (
    GLUReadout,
    State,
    as_complex,
    check_choice,
    check_state_halves,
    complex_param,
    discretize,
    hippo_modes,
    keep_mask,
    log_uniform,
    scan,
    step_keep,
    step_scan,
)
from birdie_ssm.models.registry import Mixer, MixerConfig, register_mixer
from birdie_ssm.models.s4d import DISCRETIZATIONS


def block_hippo(states: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """HiPPO-N eigenvalues [states] and the block-diagonal eigenvectors [2*states, states]."""
    size = states // blocks
    values, vectors = hippo_modes(size)
    full = np.zeros((2 * states, states), complex)
    for j in range(blocks):
        full[2 * size * j : 2 * size * (j + 1), size * j : size * (j + 1)] = vectors
    return np.tile(values, blocks), full


@dataclass(frozen=True)
class S5Config(MixerConfig):
    """Parameters of the S5 layer."""

    state_size: int = 64  # P: complex states (conjugate symmetry: a 2P-state real system)
    blocks: int = 1  # J: HiPPO-N blocks on the diagonal at initialisation
    dt_min: float = 0.001  # Δ starts log-uniform in [dt_min, dt_max], one per state
    dt_max: float = 0.1
    discretization: str = "zoh"  # zoh | bilinear

    def __post_init__(self) -> None:
        check_range("state_size", self.state_size, 2, 4096, integer=True)
        check_range("blocks", self.blocks, 1, self.state_size, integer=True)
        if self.state_size % self.blocks:
            raise ValueError(
                f"parameter 'blocks' ({self.blocks}) must divide 'state_size' ({self.state_size})"
            )
        check_range("dt_min", self.dt_min, 0.0, 1.0, open_low=True)
        check_range("dt_max", self.dt_max, self.dt_min, 10.0, open_low=True)
        check_choice("discretization", self.discretization, DISCRETIZATIONS)

    def check(self, model: ModelConfig) -> None:
        check_state_halves("s5", model, self.state_size)


@register_mixer("s5")
class S5(Mixer):
    """MIMO diagonal SSM over all channels, GLU read-out; bidirectional by state halves."""

    Config = S5Config

    def __init__(
        self, config: ModelConfig, params: S5Config, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        width, states = config.width, params.state_size
        self.states, self.method = states, params.discretization
        self.bidirectional, self.impl = bidirectional, config.scan_impl
        lam, vectors = block_hippo(states, params.blocks)
        self.lam_re_log = nnx.Param(jnp.asarray(np.log(-lam.real), jnp.float32))
        self.lam_im = nnx.Param(jnp.asarray(lam.imag, jnp.float32))
        dt = log_uniform(rngs.params(), (states,), params.dt_min, params.dt_max)
        self.log_dt = nnx.Param(jnp.log(dt))
        v = jnp.asarray(vectors, jnp.complex64)
        b = jax.random.normal(rngs.params(), (2 * states, width), jnp.float32) * width**-0.5
        self.b = nnx.Param(complex_param(v.conj().T @ b.astype(jnp.complex64)))
        c = jax.random.normal(rngs.params(), (width, 2 * states, 2), jnp.float32)
        c = as_complex(c * (4 * states) ** -0.5)
        self.c = nnx.Param(complex_param(c @ v))
        self.d = nnx.Param(jax.random.normal(rngs.params(), (width,), jnp.float32))
        self.out = GLUReadout(width, width, jnp.dtype(config.dtype), config.depth, rngs)
        # Training FLOPs per token of the recurrence (flops.py): a complex multiply-add per
        # state, 8 real FLOPs, three times over (B u and C h are parameters' products: 6N).
        self.recurrence_flops = 24 * states

    def _discrete(self) -> tuple[jax.Array, jax.Array]:
        lam = jax.lax.complex(-jnp.exp(self.lam_re_log[...]), self.lam_im[...])
        dt = jnp.exp(self.log_dt[...]).astype(jnp.complex64)
        lam_bar, factor = discretize(lam, dt, self.method)
        return lam_bar, factor[:, None] * as_complex(self.b[...])

    def _read(self, h: jax.Array, u: jax.Array) -> jax.Array:
        y = 2.0 * (h @ as_complex(self.c[...]).T).real + self.d[...] * u
        return self.out(y)

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        lam_bar, b_bar = self._discrete()
        u = x.astype(jnp.float32)
        a = jnp.where(keep_mask(ctx, self.states, self.bidirectional), lam_bar, 0.0)
        h, h_last = scan(a, u.astype(jnp.complex64) @ b_bar.T, self.bidirectional, self.impl)
        return self._read(h, u).astype(x.dtype), {"h": h_last}

    def step(self, x: jax.Array, cache: State, ctx: StepContext) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state [B, P])."""
        lam_bar, b_bar = self._discrete()
        u = x.astype(jnp.float32)
        a = jnp.where(step_keep(x.shape[0], self.states, self.bidirectional), lam_bar, 0.0)
        h, h_fwd = step_scan(a, u.astype(jnp.complex64) @ b_bar.T, cache["h"], self.bidirectional)
        return self._read(h, u).astype(x.dtype), {"h": h_fwd}
