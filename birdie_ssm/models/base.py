"""What ``BirdieLM`` and ``TransformerLM`` share: tied embedding, block stack and call plumbing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models.layers import Embedder, RMSNorm, resolve_vocab


class LanguageModel(nnx.Module):
    """Embedding -> ``config.depth`` blocks -> final RMSNorm -> tied read-out.

    Subclasses pass ``make_block(index)`` and implement ``_hidden(x, prefix_mask, segment_ids)``,
    returning the final-normed hidden states [B, L, width] first (then whatever their ``prefill``
    needs), plus ``prefill`` and ``step``.
    """

    def __init__(
        self,
        config: ModelConfig,
        vocab_size: int | None,
        make_block: Callable[[int], nnx.Module],
        *,
        rngs: nnx.Rngs,
    ):
        # Only hashable attributes are kept so nnx.split's GraphDef can be a static jit argument.
        self.vocab_size = resolve_vocab(config, vocab_size)
        self.embedder = Embedder(self.vocab_size, config.width, jnp.dtype(config.dtype), rngs)
        self.blocks = nnx.List([make_block(i) for i in range(config.depth)])
        self.final_norm = RMSNorm(config.width)

    def embed(self, input_ids: jax.Array) -> jax.Array:
        """Token ids [B, L] -> input embeddings [B, L, width]."""
        return self.embedder.encode(input_ids)

    def _hidden(
        self, x: jax.Array, prefix_mask: jax.Array | None, segment_ids: jax.Array | None
    ) -> tuple[Any, ...]:
        raise NotImplementedError

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
