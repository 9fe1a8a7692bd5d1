"""The bidirectional-to-causal SSM language model, ``BirdieLM``, and the model factory."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models.base import LanguageModel
from birdie_ssm.models.layers import GatedMLP, RMSNorm
from birdie_ssm.models.masks import SeqMasks, make_masks
from birdie_ssm.models.mixers import make_mixer
from birdie_ssm.models.transformer import TransformerLM

Cache = list[dict[str, jax.Array]]


def layer_is_bidirectional(config: ModelConfig, index: int) -> bool:
    """Whether layer ``index`` reads the prefix in both directions ('alternate': even layers)."""
    return config.bidirectional == "all" or (config.bidirectional == "alternate" and index % 2 == 0)


class ResidualBlock(nnx.Module):
    """RMSNorm -> temporal mixer -> residual; RMSNorm -> gated MLP -> residual."""

    def __init__(self, config: ModelConfig, bidirectional: bool, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(config.dtype)
        self.mix_norm = RMSNorm(config.width)
        self.mixer = make_mixer(config, bidirectional, rngs)
        self.mlp_norm = RMSNorm(config.width)
        self.mlp = GatedMLP(
            config.width, config.mlp_expansion * config.width, dtype, config.depth, rngs
        )

    def __call__(self, x: jax.Array, masks: SeqMasks) -> tuple[jax.Array, dict[str, jax.Array]]:
        y, state = self.mixer(self.mix_norm(x), masks)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), state

    def step(
        self, x: jax.Array, state: dict[str, jax.Array]
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        y, state = self.mixer.step(self.mix_norm(x), state)
        x = x + y
        return x + self.mlp(self.mlp_norm(x)), state


class BirdieLM(LanguageModel):
    """SSM language model reading prefixes bidirectionally and generating targets causally."""

    def __init__(self, config: ModelConfig, vocab_size: int | None = None, *, rngs: nnx.Rngs):
        super().__init__(
            config,
            vocab_size,
            lambda i: ResidualBlock(config, layer_is_bidirectional(config, i), rngs=rngs),
            rngs=rngs,
        )

    def _hidden(
        self, x: jax.Array, prefix_mask: jax.Array | None, segment_ids: jax.Array | None
    ) -> tuple[jax.Array, Cache]:
        masks = make_masks(x[..., 0], prefix_mask, segment_ids)
        cache = []
        for block in self.blocks:
            x, state = block(x, masks)
            cache.append(state)
        return self.final_norm(x), cache

    def prefill(
        self,
        input_ids: jax.Array,
        prefix_mask: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        max_len: int | None = None,
    ) -> tuple[jax.Array, Cache]:
        """Run a prompt with the parallel scan: last-position logits [B, vocab] and the decode state.

        The state has constant size (recurrent state plus conv cache); ``max_len`` is unused and
        only there so SSM and Transformer share one decoding interface.
        """
        del max_len
        hidden, cache = self._hidden(self.embed(input_ids), prefix_mask, segment_ids)
        return self.embedder.decode(hidden[:, -1]), cache

    def step(self, token: jax.Array, cache: Cache) -> tuple[jax.Array, Cache]:
        """Feed one target token per row [B]; return its logits [B, vocab] and the new state."""
        x = self.embed(token)
        new_cache = []
        for block, state in zip(self.blocks, cache, strict=True):
            x, state = block.step(x, state)
            new_cache.append(state)
        return self.embedder.decode(self.final_norm(x)), new_cache


def build_model(
    config: ModelConfig, vocab_size: int | None, rngs: nnx.Rngs
) -> BirdieLM | TransformerLM:
    """The model named by ``config.arch``: ``BirdieLM`` (ssm) or ``TransformerLM``."""
    if config.arch == "transformer":
        return TransformerLM(config, vocab_size, rngs=rngs)
    return BirdieLM(config, vocab_size, rngs=rngs)


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
