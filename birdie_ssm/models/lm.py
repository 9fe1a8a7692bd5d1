"""The language model, ``BirdieLM``: embedding -> residual blocks -> final norm -> tied read-out.

Each block's temporal mixer is chosen per layer by ``ModelConfig.layer_kinds()`` (the block
pattern tiled over depth, e.g. "RRA": two recurrent blocks then one attention block), and reads
the prefix in both directions where ``ModelConfig.layer_bidirectional`` says so.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models.layers import Embedder, GatedMLP, RMSNorm, resolve_vocab
from birdie_ssm.models.masks import SeqContext, StepContext, make_context
from birdie_ssm.models.registry import Mixer, get_mixer

Cache = dict[str, Any]


class ResidualBlock(nnx.Module):
    """RMSNorm -> temporal mixer -> residual; RMSNorm -> gated MLP -> residual."""

    def __init__(self, config: ModelConfig, kind: str, bidirectional: bool, *, rngs: nnx.Rngs):
        cls = get_mixer(kind)
        self.slots = cls.slots
        dtype = jnp.dtype(config.dtype)
        setattr(self, cls.slots[0], RMSNorm(config.width))
        setattr(
            self, cls.slots[1], cls(config, config.mixer_config(kind), bidirectional, rngs=rngs)
        )
        self.mlp_norm = RMSNorm(config.width)
        self.mlp = GatedMLP(
            config.width, config.mlp_expansion * config.width, dtype, config.depth, rngs
        )

    @property
    def mixer_norm(self) -> RMSNorm:
        return getattr(self, self.slots[0])

    @property
    def temporal(self) -> Mixer:
        """The block's temporal mixer."""
        return getattr(self, self.slots[1])

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, Any]:
        y, state = self.temporal(self.mixer_norm(x), ctx)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), state

    def step(self, x: jax.Array, cache: Any, ctx: StepContext) -> tuple[jax.Array, Any]:
        y, cache = self.temporal.step(self.mixer_norm(x), cache, ctx)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), cache


def _run_block(block: ResidualBlock, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, Any]:
    return block(x, ctx)


# Activation checkpointing per block: only block inputs are kept for the backward pass.
_run_block_remat = nnx.remat(_run_block)


class BirdieLM(nnx.Module):
    """Bidirectional-to-causal language model over a pattern of recurrent and attention blocks."""

    def __init__(self, config: ModelConfig, vocab_size: int | None = None, *, rngs: nnx.Rngs):
        # Only hashable attributes are kept so nnx.split's GraphDef can be a static jit argument.
        self.vocab_size = resolve_vocab(config, vocab_size)
        self.remat = config.remat
        self.embedder = Embedder(self.vocab_size, config.width, jnp.dtype(config.dtype), rngs)
        self.blocks = nnx.List(
            [
                ResidualBlock(config, kind, config.layer_bidirectional(i), rngs=rngs)
                for i, kind in enumerate(config.layer_kinds())
            ]
        )
        self.final_norm = RMSNorm(config.width)

    def embed(self, input_ids: jax.Array) -> jax.Array:
        """Token ids [B, L] -> input embeddings [B, L, width]."""
        return self.embedder.encode(input_ids)

    def _hidden(
        self, x: jax.Array, prefix_mask: jax.Array | None, segment_ids: jax.Array | None
    ) -> tuple[jax.Array, list[Any], SeqContext]:
        ctx = make_context(x.shape[:2], prefix_mask, segment_ids)
        run = _run_block_remat if self.remat else _run_block
        states = []
        for block in self.blocks:
            x, state = run(block, x, ctx)
            states.append(state)
        return self.final_norm(x), states, ctx

    def forward_embeddings(
        self,
        x: jax.Array,
        prefix_mask: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        """Logits from input embeddings (what ``embed`` returns); used for gradient tests."""
        return self.embedder.decode(self._hidden(x, prefix_mask, segment_ids)[0])

    def __call__(
        self,
        input_ids: jax.Array,
        prefix_mask: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        """[B, L] int ids -> [B, L, vocab] float32 logits; prefix_mask True = read bidirectionally."""
        return self.forward_embeddings(self.embed(input_ids), prefix_mask, segment_ids)

    def prefill(
        self,
        input_ids: jax.Array,
        prefix_mask: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        max_len: int | None = None,
    ) -> tuple[jax.Array, Cache]:
        """Run a prompt in parallel; return last-position logits [B, vocab] and the decode cache.

        Recurrent layers keep a constant-size state; attention layers a KV cache of ``max_len``
        slots (prompt plus every token to generate; default one more than the prompt).
        """
        length = input_ids.shape[1]
        max_len = length + 1 if max_len is None else max_len
        hidden, states, ctx = self._hidden(self.embed(input_ids), prefix_mask, segment_ids)
        cache = {
            "layers": [
                block.temporal.to_cache(state, max_len)
                for block, state in zip(self.blocks, states, strict=True)
            ],
            # Empty slots get segment -1 so they are never attended to.
            "segments": jnp.pad(
                ctx.segment_ids, ((0, 0), (0, max_len - length)), constant_values=-1
            ),
            "index": jnp.asarray(length, jnp.int32),
            "position": ctx.positions[:, -1] + 1,
            "segment": ctx.segment_ids[:, -1],
        }
        return self.embedder.decode(hidden[:, -1]), cache

    def step(self, token: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        """Feed one target token per row [B]; return its logits [B, vocab] and the new cache."""
        index = cache["index"]
        segments = jax.lax.dynamic_update_slice_in_dim(
            cache["segments"], cache["segment"][:, None], index, axis=1
        )
        ctx = StepContext(index, cache["position"], segments == cache["segment"][:, None])
        x = self.embed(token)
        layers = []
        for block, layer in zip(self.blocks, cache["layers"], strict=True):
            x, layer = block.step(x, layer, ctx)
            layers.append(layer)
        new_cache = {
            "layers": layers,
            "segments": segments,
            "index": index + 1,
            "position": cache["position"] + 1,
            "segment": cache["segment"],
        }
        return self.embedder.decode(self.final_norm(x)), new_cache


def build_model(config: ModelConfig, vocab_size: int | None, rngs: nnx.Rngs) -> BirdieLM:
    """The model ``config`` describes (every architecture, hybrids included, is a ``BirdieLM``)."""
    return BirdieLM(config, vocab_size, rngs=rngs)


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
