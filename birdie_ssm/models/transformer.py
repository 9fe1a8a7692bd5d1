"""Prefix-LM Transformer baseline with RoPE and KV-cache decoding; same interface as BirdieLM."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models.base import LanguageModel
from birdie_ssm.models.layers import GatedMLP, RMSNorm, dense

Cache = dict[str, Any]
# Queries are processed in blocks of this size so no [L, L] score matrix is ever held whole.
QUERY_BLOCK = 512


def segment_positions(segment_ids: jax.Array) -> jax.Array:
    """Position of every token inside its segment ([B, L] int32), restarting at each segment."""
    idx = jnp.arange(segment_ids.shape[1], dtype=jnp.int32)
    start = jnp.pad(
        segment_ids[:, 1:] != segment_ids[:, :-1], ((0, 0), (1, 0)), constant_values=True
    )
    return idx - jax.lax.cummax(jnp.where(start, idx, 0), axis=1)


class MaskInfo(NamedTuple):
    """What the attention mask is computed from, per position (never materialised as [L, L])."""

    segment_ids: jax.Array  # [B, L]
    runs: jax.Array  # [B, L]: id of the contiguous prefix stretch, -1 outside any prefix


def mask_info(prefix_mask: jax.Array, segment_ids: jax.Array) -> MaskInfo:
    """Label contiguous prefix stretches, so a prefix never sees past a target in between."""
    prev_prefix = jnp.pad(prefix_mask[:, :-1], ((0, 0), (1, 0)))
    same_as_prev = jnp.pad(segment_ids[:, 1:] == segment_ids[:, :-1], ((0, 0), (1, 0)))
    run = jnp.cumsum(prefix_mask & ~(prev_prefix & same_as_prev), axis=1)
    return MaskInfo(segment_ids, jnp.where(prefix_mask, run, -1))


def block_mask(info: MaskInfo, query_idx: jax.Array) -> jax.Array:
    """[B, 1, Q, L] bool for queries at ``query_idx``: causal in a segment, full in a prefix run."""
    seg_q = jnp.take(info.segment_ids, query_idx, axis=1, mode="fill", fill_value=-2)
    run_q = jnp.take(info.runs, query_idx, axis=1, mode="fill", fill_value=-1)
    same_seg = seg_q[:, :, None] == info.segment_ids[:, None, :]
    same_run = (run_q[:, :, None] == info.runs[:, None, :]) & (run_q[:, :, None] >= 0)
    causal = query_idx[:, None] >= jnp.arange(info.segment_ids.shape[1])[None, :]
    return (same_seg & (causal | same_run))[:, None]


def rope(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary embedding of x [B, L, H, Dh] at integer positions [B, L]."""
    half = x.shape[-1] // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle = positions[..., None, None].astype(jnp.float32) * freq
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


class Attention(nnx.Module):
    """Multi-head self-attention with RoPE on queries and keys."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(config.dtype)
        self.heads, self.head_dim = config.num_heads, config.width // config.num_heads
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

    def _attend(self, q: jax.Array, k: jax.Array, v: jax.Array, info: MaskInfo) -> jax.Array:
        batch, length = q.shape[:2]
        if length <= QUERY_BLOCK:
            y = self._mix(q, k, v, block_mask(info, jnp.arange(length)))
        else:
            blocks = -(-length // QUERY_BLOCK)
            qb = jnp.pad(q, ((0, 0), (0, blocks * QUERY_BLOCK - length), (0, 0), (0, 0)))
            qb = jnp.swapaxes(qb.reshape(batch, blocks, QUERY_BLOCK, *q.shape[2:]), 0, 1)
            idx = jnp.arange(blocks * QUERY_BLOCK).reshape(blocks, QUERY_BLOCK)

            # Recompute each block's scores in the backward pass instead of storing them.
            @jax.checkpoint
            def one_block(args):
                q_block, idx_block = args
                return self._mix(q_block, k, v, block_mask(info, idx_block))

            y = jax.lax.map(one_block, (qb, idx))
            y = jnp.swapaxes(y, 0, 1).reshape(batch, blocks * QUERY_BLOCK, *q.shape[2:])[:, :length]
        return self.out(y.reshape(batch, length, -1))

    def __call__(
        self, x: jax.Array, positions: jax.Array, info: MaskInfo
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        q, k, v = self._project(x, positions)
        return self._attend(q, k, v, info), (k, v)

    def step(
        self,
        x: jax.Array,
        positions: jax.Array,
        mask: jax.Array,
        kv: tuple[jax.Array, jax.Array],
        index: jax.Array,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """x [B, 1, width] at cache slot ``index``; mask [B, 1, 1, T] over the cache."""
        q, k, v = self._project(x, positions)
        k_cache = jax.lax.dynamic_update_slice_in_dim(kv[0], k, index, axis=1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(kv[1], v, index, axis=1)
        return self.out(self._mix(q, k_cache, v_cache, mask).reshape(x.shape)), (k_cache, v_cache)


class TransformerBlock(nnx.Module):
    """RMSNorm -> attention -> residual; RMSNorm -> gated MLP -> residual."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(config.dtype)
        self.attn_norm = RMSNorm(config.width)
        self.attn = Attention(config, rngs=rngs)
        self.mlp_norm = RMSNorm(config.width)
        self.mlp = GatedMLP(
            config.width, config.mlp_expansion * config.width, dtype, config.depth, rngs
        )

    def __call__(self, x: jax.Array, positions: jax.Array, info: MaskInfo) -> tuple[jax.Array, Any]:
        y, kv = self.attn(self.attn_norm(x), positions, info)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), kv

    def step(self, x, positions, mask, kv, index) -> tuple[jax.Array, Any]:
        y, kv = self.attn.step(self.attn_norm(x), positions, mask, kv, index)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), kv


class TransformerLM(LanguageModel):
    """Prefix-LM Transformer: bidirectional attention inside the prefix, causal elsewhere."""

    def __init__(self, config: ModelConfig, vocab_size: int | None = None, *, rngs: nnx.Rngs):
        super().__init__(
            config, vocab_size, lambda _: TransformerBlock(config, rngs=rngs), rngs=rngs
        )

    def _hidden(
        self, x: jax.Array, prefix_mask: jax.Array | None, segment_ids: jax.Array | None
    ) -> tuple[jax.Array, list[Any], jax.Array, jax.Array]:
        shape = x.shape[:2]
        segment_ids = (
            jnp.ones(shape, jnp.int32) if segment_ids is None else segment_ids.astype(jnp.int32)
        )
        prefix_mask = jnp.zeros(shape, bool) if prefix_mask is None else prefix_mask.astype(bool)
        positions = segment_positions(segment_ids)
        info = mask_info(prefix_mask, segment_ids)
        kvs = []
        for block in self.blocks:
            x, kv = block(x, positions, info)
            kvs.append(kv)
        return self.final_norm(x), kvs, positions, segment_ids

    def prefill(
        self,
        input_ids: jax.Array,
        prefix_mask: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        max_len: int | None = None,
    ) -> tuple[jax.Array, Cache]:
        """Run a prompt; return last-position logits [B, vocab] and a KV cache of ``max_len`` slots."""
        batch, length = input_ids.shape
        max_len = length + 1 if max_len is None else max_len
        hidden, kvs, positions, segment_ids = self._hidden(
            self.embed(input_ids), prefix_mask, segment_ids
        )
        pad = ((0, 0), (0, max_len - length), (0, 0), (0, 0))
        layers = [(jnp.pad(k, pad), jnp.pad(v, pad)) for k, v in kvs]
        cache = {
            "layers": layers,
            # Empty slots get segment -1 so they are never attended to.
            "segments": jnp.pad(segment_ids, ((0, 0), (0, max_len - length)), constant_values=-1),
            "index": jnp.asarray(length, jnp.int32),
            "position": positions[:, -1] + 1,
            "segment": segment_ids[:, -1],
        }
        return self.embedder.decode(hidden[:, -1]), cache

    def step(self, token: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        """Feed one target token per row [B]; return its logits [B, vocab] and the new cache."""
        index = cache["index"]
        segments = jax.lax.dynamic_update_slice_in_dim(
            cache["segments"], cache["segment"][:, None], index, axis=1
        )
        mask = (segments == cache["segment"][:, None])[:, None, None, :]
        positions = cache["position"][:, None]
        x = self.embed(token[:, None])
        layers = []
        for block, kv in zip(self.blocks, cache["layers"], strict=True):
            x, kv = block.step(x, positions, mask, kv, index)
            layers.append(kv)
        new_cache = {
            "layers": layers,
            "segments": segments,
            "index": index + 1,
            "position": cache["position"] + 1,
            "segment": cache["segment"],
        }
        return self.embedder.decode(self.final_norm(x[:, 0])), new_cache
