"""Multi-head attention mixer (``attention``) with RoPE and a KV cache for decoding.

Prefix-LM masking, the same invariant as the recurrent mixers: causal within a segment, never
across segments, and, in a bidirectional layer, full attention within each contiguous prefix run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models.layers import dense
from birdie_ssm.models.masks import SeqContext, StepContext
from birdie_ssm.models.registry import Mixer, MixerConfig, check_int, register_mixer

KV = tuple[jax.Array, jax.Array]
# Queries are processed in blocks of this size so no [L, L] score matrix is ever held whole.
QUERY_BLOCK = 512


@dataclass(frozen=True)
class AttentionConfig(MixerConfig):
    """Parameters of the attention mixer."""

    num_heads: int = 4

    def __post_init__(self) -> None:
        check_int("num_heads", self.num_heads, 1, 256)

    def check(self, model: ModelConfig) -> None:
        if model.width % (2 * self.num_heads):
            raise ValueError(
                f"model.width {model.width} must be a multiple of 2 * "
                f"model.mixers.attention.num_heads ({2 * self.num_heads}) so RoPE gets an even "
                "head size"
            )


def block_mask(segment_ids: jax.Array, runs: jax.Array, query_idx: jax.Array) -> jax.Array:
    """[B, 1, Q, L] bool for queries at ``query_idx``: causal in a segment, full in a prefix run."""
    seg_q = jnp.take(segment_ids, query_idx, axis=1, mode="fill", fill_value=-2)
    run_q = jnp.take(runs, query_idx, axis=1, mode="fill", fill_value=-1)
    same_seg = seg_q[:, :, None] == segment_ids[:, None, :]
    same_run = (run_q[:, :, None] == runs[:, None, :]) & (run_q[:, :, None] >= 0)
    causal = query_idx[:, None] >= jnp.arange(segment_ids.shape[1])[None, :]
    return (same_seg & (causal | same_run))[:, None]


def rope(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary embedding of x [B, L, H, Dh] at integer positions [B, L]."""
    half = x.shape[-1] // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle = positions[..., None, None].astype(jnp.float32) * freq
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


@register_mixer("attention")
class Attention(Mixer):
    """Multi-head self-attention with RoPE on queries and keys."""

    Config = AttentionConfig
    # The Transformer's historical names: its checkpoints keep restoring, its leaves keep order.
    slots: ClassVar[tuple[str, str]] = ("attn_norm", "attn")

    def __init__(
        self, config: ModelConfig, params: AttentionConfig, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        dtype = jnp.dtype(config.dtype)
        self.bidirectional = bidirectional
        self.heads, self.head_dim = params.num_heads, config.width // params.num_heads
        self.qkv = dense(config.width, 3 * config.width, dtype, rngs)
        self.out = dense(config.width, config.width, dtype, rngs, scale=1.0 / config.depth)

    def _project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, ...]:
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        shape = (*x.shape[:-1], self.heads, self.head_dim)
        q, k, v = (t.reshape(shape) for t in (q, k, v))
        return rope(q, positions), rope(k, positions), v

    def _mix(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
        scores = jnp.where(mask, scores * self.head_dim**-0.5, -1e30)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        return jnp.einsum("bhqk,bkhd->bqhd", probs, v)

    def _attend(
        self, q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, runs: jax.Array
    ) -> jax.Array:
        batch, length = q.shape[:2]
        if length <= QUERY_BLOCK:
            y = self._mix(q, k, v, block_mask(segment_ids, runs, jnp.arange(length)))
        else:
            blocks = -(-length // QUERY_BLOCK)
            qb = jnp.pad(q, ((0, 0), (0, blocks * QUERY_BLOCK - length), (0, 0), (0, 0)))
            qb = jnp.swapaxes(qb.reshape(batch, blocks, QUERY_BLOCK, *q.shape[2:]), 0, 1)
            idx = jnp.arange(blocks * QUERY_BLOCK).reshape(blocks, QUERY_BLOCK)

            # Recompute each block's scores in the backward pass instead of storing them.
            @jax.checkpoint
            def one_block(args):
                q_block, idx_block = args
                return self._mix(q_block, k, v, block_mask(segment_ids, runs, idx_block))

            y = jax.lax.map(one_block, (qb, idx))
            y = jnp.swapaxes(y, 0, 1).reshape(batch, blocks * QUERY_BLOCK, *q.shape[2:])[:, :length]
        return self.out(y.reshape(batch, length, -1))

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, KV]:
        """x [B, L, width] -> (y [B, L, width], keys and values of every position)."""
        q, k, v = self._project(x, ctx.positions)
        # A causal layer treats no position as prefix: no prefix run, so plain causal attention.
        runs = ctx.runs if self.bidirectional else jnp.full_like(ctx.runs, -1)
        return self._attend(q, k, v, ctx.segment_ids, runs), (k, v)

    def to_cache(self, state: KV, max_len: int) -> KV:
        """Keys and values padded to ``max_len`` slots."""
        pad = ((0, 0), (0, max_len - state[0].shape[1]), (0, 0), (0, 0))
        return jnp.pad(state[0], pad), jnp.pad(state[1], pad)

    def step(self, x: jax.Array, cache: KV, ctx: StepContext) -> tuple[jax.Array, KV]:
        """x [B, width] written to cache slot ``ctx.index``, attending to its segment's slots."""
        q, k, v = self._project(x[:, None], ctx.positions[:, None])
        k_cache = jax.lax.dynamic_update_slice_in_dim(cache[0], k, ctx.index, axis=1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(cache[1], v, ctx.index, axis=1)
        y = self._mix(q, k_cache, v_cache, ctx.attend[:, None, None, :])
        return self.out(y.reshape(x.shape)), (k_cache, v_cache)
