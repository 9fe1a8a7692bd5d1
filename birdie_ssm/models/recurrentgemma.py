"""RecurrentGemma's two temporal blocks as mixers: ``rg_recurrent`` and ``rg_attention``.

They compute what the ``recurrentgemma`` package's Griffin blocks compute, so its checkpoints
run here unchanged (``train/convert.py``):

- ``rg_recurrent``: linear_out(gelu(linear_y x) * RG-LRU(conv_1d(linear_x x))), every
  projection with a bias; the RG-LRU's input and recurrence gates are block-diagonal
  (``num_heads`` blocks), log a = -8 * sigmoid(a_gate u) * softplus(a_param), and the input is
  scaled by sqrt(1 - a^2) except at a segment start (a = 0 there, scale 1).
- ``rg_attention``: local multi-query attention (``num_heads`` query heads, one key/value
  head), RoPE on the first half of each head's dimensions, each query seeing its own segment's
  last ``window + 1`` positions.

The rest of a Griffin model is ``BirdieLM`` with ``model.mlp_bias``, ``model.embed_scale`` and
``model.logits_soft_cap`` set (and RMSNorm scales stored as 1 + RecurrentGemma's scale).
A ``bidirectional`` layer treats its prefix as the other mixers do: the recurrent block runs
the second half of its channels in reverse over the prefix, attention reads the whole prefix
run; either changes what a pretrained layer computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import check_range
from birdie_ssm.models.attention import KV, pad_cache, rope, write_cache
from birdie_ssm.models.layers import ShortConv, dense, sqrt_bounded
from birdie_ssm.models.masks import SeqContext, StepContext
from birdie_ssm.models.recurrent import State, keep_mask, scan, step_keep, step_scan
from birdie_ssm.models.registry import Mixer, MixerConfig, register_mixer


@dataclass(frozen=True)
class RGRecurrentConfig(MixerConfig):
    """Parameters of RecurrentGemma's recurrent block."""

    lru_width: int | None = None  # RG-LRU channels; None: the model width
    num_heads: int = 4  # diagonal blocks of the RG-LRU's gates
    conv_width: int = 4  # taps of the causal convolution

    def __post_init__(self) -> None:
        if self.lru_width is not None:
            check_range("lru_width", self.lru_width, 2, 1 << 20, integer=True)
        check_range("num_heads", self.num_heads, 1, 4096, integer=True)
        check_range("conv_width", self.conv_width, 1, 16, integer=True)

    def check(self, model: ModelConfig) -> None:
        dim = self.lru_width or model.width
        if dim % self.num_heads:
            raise ValueError(
                f"model.mixers.rg_recurrent: lru_width {dim} must be a multiple of num_heads "
                f"{self.num_heads} (the gates' diagonal blocks)"
            )
        if model.bidirectional != "none" and dim % 2:
            raise ValueError(
                f"model.mixers.rg_recurrent: lru_width {dim} must be even to split a "
                "bidirectional layer's channels into a forward and a reverse half"
            )


class BlockDiagonal(nnx.Module):
    """A linear map of ``blocks`` independent square blocks, with a bias: w [H, n, n], b [H, n]."""

    def __init__(self, dim: int, blocks: int, dtype: jnp.dtype, rngs: nnx.Rngs):
        size = dim // blocks
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1, out_axis=2)
        self.w = nnx.Param(init(rngs.params(), (blocks, size, size), jnp.float32))
        self.b = nnx.Param(jnp.zeros((blocks, size), jnp.float32))
        self.blocks, self.dtype = blocks, dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        xb = x.reshape(*x.shape[:-1], self.blocks, -1)
        y = jnp.einsum("...hi,hij->...hj", xb, self.w[...].astype(self.dtype))
        return (y + self.b[...].astype(self.dtype)).reshape(x.shape)


def _linear(d_in: int, d_out: int, dtype: jnp.dtype, rngs: nnx.Rngs, scale: float = 1.0):
    return dense(d_in, d_out, dtype, rngs, scale=scale, bias=True)


@register_mixer("rg_recurrent")
class RGRecurrent(Mixer):
    """RecurrentGemma's recurrent block: gelu branch times (conv -> RG-LRU) branch."""

    Config = RGRecurrentConfig

    def __init__(
        self,
        config: ModelConfig,
        params: RGRecurrentConfig,
        bidirectional: bool,
        *,
        rngs: nnx.Rngs,
    ):
        width, dim = config.width, params.lru_width or config.width
        dtype = jnp.dtype(config.dtype)
        self.dim, self.bidirectional, self.impl = dim, bidirectional, config.scan_impl
        self.linear_y = _linear(width, dim, dtype, rngs)
        self.linear_x = _linear(width, dim, dtype, rngs)
        self.conv_1d = ShortConv(dim, params.conv_width, rngs)
        self.input_gate = BlockDiagonal(dim, params.num_heads, dtype, rngs)
        self.a_gate = BlockDiagonal(dim, params.num_heads, dtype, rngs)
        # Ring init: the base decay exp(-softplus(a_param)) lies in [0.9, 0.999].
        a0 = jnp.sqrt(jax.random.uniform(rngs.params(), (dim,), jnp.float32, 0.9**2, 0.999**2))
        self.a_param = nnx.Param(jnp.log(jnp.expm1(-jnp.log(a0))))
        self.linear_out = _linear(dim, width, dtype, rngs, scale=1.0 / config.depth)

    def _lru_inputs(self, u: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
        gate_x = jax.nn.sigmoid(self.input_gate(u))
        gate_a = jax.nn.sigmoid(self.a_gate(u)).astype(jnp.float32)
        log_a = -8.0 * gate_a * jax.nn.softplus(self.a_param[...])
        a = jnp.where(keep, jnp.exp(log_a), 0.0)
        # 1 - exp(2 log a), as the reference computes it (not expm1): the same rounding.
        mult = jnp.where(keep, sqrt_bounded(1.0 - jnp.exp(2.0 * log_a)), 1.0)
        return a, ((u * gate_x).astype(jnp.float32) * mult).astype(u.dtype)

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, State]:
        """x [B, L, width] -> (y [B, L, width], decode state after the last position)."""
        y = jax.nn.gelu(self.linear_y(x))
        u, conv_cache = self.conv_1d(self.linear_x(x), ctx.segment_ids)
        a, b = self._lru_inputs(u, keep_mask(ctx, self.dim, self.bidirectional))
        h, h_last = scan(a, b, self.bidirectional, self.impl)
        return self.linear_out(h * y), {"h": h_last, "conv": conv_cache}

    def step(self, x: jax.Array, cache: State, ctx: StepContext) -> tuple[jax.Array, State]:
        """One decode step: x [B, width] -> (y [B, width], new state)."""
        y = jax.nn.gelu(self.linear_y(x))
        u, conv_cache = self.conv_1d.step(self.linear_x(x), cache["conv"])
        a, b = self._lru_inputs(u, step_keep(x.shape[0], self.dim, self.bidirectional))
        h, h_fwd = step_scan(a, b, cache["h"], self.bidirectional)
        return self.linear_out(h * y), {"h": h_fwd, "conv": conv_cache}


@dataclass(frozen=True)
class RGAttentionConfig(MixerConfig):
    """Parameters of RecurrentGemma's local multi-query attention block."""

    num_heads: int = 4  # query heads; keys and values have one head
    window: int = 2048  # a query sees itself and the window positions before it

    def __post_init__(self) -> None:
        check_range("num_heads", self.num_heads, 1, 256, integer=True)
        check_range("window", self.window, 1, 1 << 24, integer=True)

    def check(self, model: ModelConfig) -> None:
        if model.width % (4 * self.num_heads):
            raise ValueError(
                f"model.width {model.width} must be a multiple of 4 * "
                f"model.mixers.rg_attention.num_heads ({4 * self.num_heads}): RoPE rotates "
                "pairs in the first half of each head"
            )


def _half_rope(x: jax.Array, positions: jax.Array) -> jax.Array:
    """RoPE on the first half of the head dimensions; the second half passes unchanged."""
    rotated, kept = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([rope(rotated, positions), kept], axis=-1)


@register_mixer("rg_attention")
class RGAttention(Mixer):
    """Local multi-query attention with RoPE on half of each head."""

    Config = RGAttentionConfig

    def __init__(
        self,
        config: ModelConfig,
        params: RGAttentionConfig,
        bidirectional: bool,
        *,
        rngs: nnx.Rngs,
    ):
        dtype = jnp.dtype(config.dtype)
        self.bidirectional, self.window = bidirectional, params.window
        self.heads, self.head_dim = params.num_heads, config.width // params.num_heads
        self.proj_q = dense(config.width, config.width, dtype, rngs)
        self.proj_k = dense(config.width, self.head_dim, dtype, rngs)
        self.proj_v = dense(config.width, self.head_dim, dtype, rngs)
        self.proj_final = _linear(config.width, config.width, dtype, rngs, 1.0 / config.depth)

    def _project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, ...]:
        q = self.proj_q(x).reshape(*x.shape[:-1], self.heads, self.head_dim)
        k = self.proj_k(x)[..., None, :]
        v = self.proj_v(x)[..., None, :]
        return _half_rope(q, positions), _half_rope(k, positions), v

    def _attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
        y = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")
        return self.proj_final(y.reshape(*q.shape[:-2], -1))

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, KV]:
        """x [B, L, width] -> (y [B, L, width], keys and values of every position)."""
        q, k, v = self._project(x, ctx.positions)
        idx = jnp.arange(x.shape[1])
        in_window = (idx[:, None] >= idx[None, :]) & (idx[:, None] <= idx[None, :] + self.window)
        visible = in_window[None]
        if self.bidirectional:
            runs = ctx.runs
            visible = visible | ((runs[:, :, None] == runs[:, None, :]) & (runs[:, :, None] >= 0))
        same_segment = ctx.segment_ids[:, :, None] == ctx.segment_ids[:, None, :]
        return self._attend(q, k, v, (visible & same_segment)[:, None]), (k, v)

    def to_cache(self, state: KV, max_len: int) -> KV:
        return pad_cache(state, max_len)

    def step(self, x: jax.Array, cache: KV, ctx: StepContext) -> tuple[jax.Array, KV]:
        """x [B, width] written to cache slot ``ctx.index``; it reads its window's slots."""
        q, k, v = self._project(x[:, None], ctx.positions[:, None])
        k_cache, v_cache = write_cache(cache, k, v, ctx.index)
        slots = jnp.arange(k_cache.shape[1])
        visible = ctx.attend & (slots >= ctx.index - self.window)[None]
        return self._attend(q, k_cache, v_cache, visible[:, None, None, :])[:, 0], (
            k_cache,
            v_cache,
        )
