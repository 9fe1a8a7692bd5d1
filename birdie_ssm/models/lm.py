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
    """RMSNorm -> temporal mixer -> residual; RMSNorm -> gated MLP -> residual (no MLP when
    ``model.mlp_expansion`` is 0, as in Mamba's blocks)."""

    def __init__(self, config: ModelConfig, kind: str, bidirectional: bool, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(config.dtype)
        self.mix_norm = RMSNorm(config.width)
        self.mixer: Mixer = get_mixer(kind)(
            config, config.mixer_config(kind), bidirectional, rngs=rngs
        )
        if not config.mlp_expansion:
            self.mlp_norm = self.mlp = None
        else:
            self.mlp_norm = RMSNorm(config.width)
            self.mlp = GatedMLP(
                config.width,
                config.mlp_expansion * config.width,
                dtype,
                config.depth,
                rngs,
                bias=config.mlp_bias,
            )

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, Any]:
        y, state = self.mixer(self.mix_norm(x), ctx)
        return self._channel(x + y), state

    def step(self, x: jax.Array, cache: Any, ctx: StepContext) -> tuple[jax.Array, Any]:
        y, cache = self.mixer.step(self.mix_norm(x), cache, ctx)
        return self._channel(x + y), cache

    def _channel(self, x: jax.Array) -> jax.Array:
        return x if self.mlp is None else x + self.mlp(self.mlp_norm(x))


def _run_block(block: ResidualBlock, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, Any]:
    return block(x, ctx)


# Activation checkpointing per block: only block inputs are kept for the backward pass.
_run_block_remat = nnx.remat(_run_block)


def scan_period(signatures: list[tuple[str, bool]]) -> int:
    """The shortest period p with signatures[i] == signatures[i + p] for every layer."""
    depth = len(signatures)
    return next(
        p
        for p in range(1, depth + 1)
        if all(signatures[i] == signatures[i + p] for i in range(depth - p))
    )


def _stacked_block(
    config: ModelConfig, kind: str, bidirectional: bool, groups: int, rngs: nnx.Rngs
) -> ResidualBlock:
    """``groups`` blocks of one kind as one module whose every variable has a leading axis."""

    @nnx.split_rngs(splits=groups)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs: nnx.Rngs) -> ResidualBlock:
        return ResidualBlock(config, kind, bidirectional, rngs=rngs)

    return create(rngs)


def _row(tree: Any, index: int) -> Any:
    """Layer ``index`` of a tree whose leaves are stacked over layers on their leading axis."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def _run_scanned(
    stacked: list[ResidualBlock], x: jax.Array, ctx: SeqContext, remat: bool
) -> tuple[jax.Array, list[Any]]:
    """Run the stacked period over depth with ``lax.scan``: one traced body whatever the depth.

    Returns the output and, per period position, its layers' states stacked on a leading axis.
    """
    graphdefs, params = zip(*(nnx.split(block) for block in stacked), strict=True)
    run = _run_block_remat if remat else _run_block

    def body(x: jax.Array, period: list[nnx.State]) -> tuple[jax.Array, list[Any]]:
        states = []
        for graphdef, state in zip(graphdefs, period, strict=True):
            x, layer_state = run(nnx.merge(graphdef, state), x, ctx)
            states.append(layer_state)
        return x, states

    return jax.lax.scan(body, x, list(params))


class BirdieLM(nnx.Module):
    """Bidirectional-to-causal language model over a pattern of recurrent and attention blocks."""

    def __init__(self, config: ModelConfig, vocab_size: int | None = None, *, rngs: nnx.Rngs):
        # Only hashable attributes are kept so nnx.split's GraphDef can be a static jit argument.
        self.vocab_size = resolve_vocab(config, vocab_size)
        self.remat = config.remat
        kinds = config.layer_kinds()
        signatures = [(kind, config.layer_bidirectional(i)) for i, kind in enumerate(kinds)]
        period = scan_period(signatures)
        # Scanning pays only with two or more whole periods sharing one traced body.
        groups = len(kinds) // period if config.scan_layers and len(kinds) >= 2 * period else 0
        self.scan_groups = groups
        self.embedder = Embedder(
            self.vocab_size,
            config.width,
            jnp.dtype(config.dtype),
            rngs,
            scale=config.embed_scale,
            soft_cap=config.logits_soft_cap,
        )
        # scan_layers: the first groups * period layers live stacked, one module per position
        # in the period; ``blocks`` holds the rest (every layer when not scanning).
        self.scanned = nnx.List(
            [_stacked_block(config, *signatures[j], groups, rngs) for j in range(period)]
            if groups
            else []
        )
        self.blocks = nnx.List(
            [
                ResidualBlock(config, kind, bidirectional, rngs=rngs)
                for kind, bidirectional in signatures[groups * len(self.scanned) :]
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
        states = []
        if self.scan_groups:
            x, stacked = _run_scanned(list(self.scanned), x, ctx, self.remat)
            states = [_row(position, g) for g in range(self.scan_groups) for position in stacked]
        run = _run_block_remat if self.remat else _run_block
        for block in self.blocks:
            x, state = run(block, x, ctx)
            states.append(state)
        return self.final_norm(x), states, ctx

    def layers(self) -> list[ResidualBlock]:
        """Every layer's block in order; a scanned layer as a view of its slice of the stack."""
        splits = [nnx.split(block) for block in self.scanned]
        views = [
            nnx.merge(graphdef, _row(state, g))
            for g in range(self.scan_groups)
            for graphdef, state in splits
        ]
        return views + list(self.blocks)

    def temporal_mixers(self) -> list[Mixer]:
        """Every layer's temporal mixer in order, for static attributes (works under eval_shape)."""
        scanned = [block.mixer for _ in range(self.scan_groups) for block in self.scanned]
        return scanned + [block.mixer for block in self.blocks]

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
        """[B, L] int ids -> [B, L, vocab] float32 logits; prefix_mask True = read
        bidirectionally."""
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
                mixer.to_cache(state, max_len)
                for mixer, state in zip(self.temporal_mixers(), states, strict=True)
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
        for block, layer in zip(self.layers(), cache["layers"], strict=True):
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
