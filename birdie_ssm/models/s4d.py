"""S4 in its diagonal form (``s4d``; Gu et al. 2022): one linear time-invariant SSM per channel.

Each of the ``width`` channels has N/2 complex modes (one of each conjugate pair):

    A = -exp(A_re_log) + i A_im,  Δ = exp(log_dt)   ([channels, N/2], [channels])
    A_bar, B_bar = discretize(A, Δ) B                 (zero-order hold or bilinear)
    h_t = A_bar ⊙ h_{t-1} + B_bar u_t;  y_t = 2 Re(Σ_n C_n h_t,n) + D u_t
    out = GLU(GeLU(y))

Initialisations of A: ``legs`` (the eigenvalues of HiPPO-LegS's normal part), ``lin``
(-1/2 + iπn) and ``inv`` (-1/2 + i N/π (N/(2n+1) - 1)). The recurrence is complex, so it runs on a
scan implementation that carries one; the [B, L, channels, N/2] states are scanned chunk by
chunk (``recurrent.chunked_scan``).
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
    check_complex_scan,
    check_even_split,
    chunked_halves,
    complex_param,
    discretize,
    hippo_modes,
    keep_mask,
    log_uniform,
    step_keep,
    step_scan,
)
from birdie_ssm.models.registry import Mixer, MixerConfig, register_mixer

DISCRETIZATIONS = ("zoh", "bilinear")
S4D_INITS = ("legs", "lin", "inv")


def s4d_eigenvalues(init: str, modes: int) -> np.ndarray:
    """The initial A of one channel: ``modes`` eigenvalues, one per conjugate pair."""
    n = np.arange(modes)
    if init == "lin":
        return -0.5 + 1j * np.pi * n
    if init == "inv":
        size = 2 * modes
        return -0.5 + 1j * size / np.pi * (size / (2 * n + 1) - 1)
    return hippo_modes(modes)[0]


@dataclass(frozen=True)
class S4DConfig(MixerConfig):
    """Parameters of the S4D layer."""

    state_size: int = 64  # N: states per channel, N/2 complex conjugate pairs
    dt_min: float = 0.001  # Δ starts log-uniform in [dt_min, dt_max]
    dt_max: float = 0.1
    discretization: str = "zoh"  # zoh | bilinear
    init: str = "legs"  # legs | lin | inv
    chunk: int = 128  # positions whose [B, chunk, channels, N/2] states exist at once

    def __post_init__(self) -> None:
        check_range("state_size", self.state_size, 2, 1024, integer=True)
        if self.state_size % 2:
            raise ValueError(
                f"parameter 'state_size' must be even (conjugate pairs), got {self.state_size}"
            )
        check_range("dt_min", self.dt_min, 0.0, 1.0, open_low=True)
        check_range("dt_max", self.dt_max, self.dt_min, 10.0, open_low=True)
        check_choice("discretization", self.discretization, DISCRETIZATIONS)
        check_choice("init", self.init, S4D_INITS)
        check_range("chunk", self.chunk, 1, 65536, integer=True)

    def check(self, model: ModelConfig) -> None:
        check_complex_scan("s4d", model)
        check_even_split("s4d", model, 1, "model.width")


@register_mixer("s4d")
class S4D(Mixer):
    """Diagonal LTI SSM per channel, GLU read-out; bidirectional by channel halves."""

    Config = S4DConfig

    def __init__(
        self, config: ModelConfig, params: S4DConfig, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        width, modes = config.width, params.state_size // 2
        self.channels, self.modes, self.method = width, modes, params.discretization
        self.bidirectional, self.impl, self.chunk = bidirectional, config.scan_impl, params.chunk
        lam = np.broadcast_to(s4d_eigenvalues(params.init, modes), (width, modes))
        self.a_re_log = nnx.Param(jnp.asarray(np.log(-lam.real), jnp.float32))
        self.a_im = nnx.Param(jnp.asarray(lam.imag, jnp.float32))
        dt = log_uniform(rngs.params(), (width,), params.dt_min, params.dt_max)
        self.log_dt = nnx.Param(jnp.log(dt))
        self.b = nnx.Param(complex_param(jnp.ones((width, modes), jnp.complex64)))
        c = jax.random.normal(rngs.params(), (width, modes, 2), jnp.float32) * 0.5**0.5
        self.c = nnx.Param(c)
        self.d = nnx.Param(jax.random.normal(rngs.params(), (width,), jnp.float32))
        self.out = GLUReadout(width, width, jnp.dtype(config.dtype), config.depth, rngs)
        # Training FLOPs per token of the recurrence (flops.py): a complex multiply-add per mode,
        # 8 real FLOPs, three times over with the backward pass.
        self.recurrence_flops = 24 * width * modes

    def _discrete(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(A_bar, B_bar, C) per channel and mode, complex [channels, N/2]."""
        lam = jax.lax.complex(-jnp.exp(self.a_re_log[...]), self.a_im[...])
        dt = jnp.exp(self.log_dt[...])[:, None].astype(jnp.complex64)
        lam_bar, factor = discretize(lam, dt, self.method)
        return lam_bar, factor * as_complex(self.b[...]), as_complex(self.c[...])

    @staticmethod
    def _build(inputs, params):
        (u, keep), _ = inputs
        lam_bar, b_bar, _ = params
        decay = jnp.where(keep[..., None], lam_bar, 0.0)
        return decay, u[..., None].astype(jnp.complex64) * b_bar

    @staticmethod
    def _read(h, inputs, params):
        del inputs
        return 2.0 * jnp.einsum("btcn,cn->btc", h, params[2]).real

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        keep = keep_mask(ctx, self.channels, self.bidirectional)
        u = x.astype(jnp.float32)
        y, h_last = chunked_halves(
            self._build,
            self._read,
            (u, keep),
            (),
            self._discrete(),
            self.bidirectional,
            impl=self.impl,
            chunk=self.chunk,
        )
        y = y + self.d[...] * u
        return self.out(y.astype(x.dtype)), {"h": h_last}

    def step(self, x: jax.Array, cache: State, ctx: StepContext) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state [B, channels * N/2])."""
        lam_bar, b_bar, c = self._discrete()
        u = x.astype(jnp.float32)
        size = self.channels * self.modes
        keep = step_keep(x.shape[0], size, self.bidirectional)
        a = jnp.where(keep, lam_bar.reshape(size), 0.0)
        b = (u[..., None] * b_bar).reshape(-1, size)
        h, h_fwd = step_scan(a, b, cache["h"], self.bidirectional)
        y = 2.0 * jnp.einsum("bcn,cn->bc", h.reshape(-1, self.channels, self.modes), c).real
        return self.out((y + self.d[...] * u).astype(x.dtype)), {"h": h_fwd}
