"""RecurrentGemma (Griffin / Hawk) checkpoints as birdie-ssm models.

The ``recurrentgemma`` package saves a parameter tree with Orbax. Its shapes give the
architecture, as the package itself reads them: vocabulary and width from the embedding, MLP
width from ``ffw_up``, the block types from which sub-block each ``blocks.i`` holds, the RG-LRU
width and gate blocks from ``a_gate``, the attention heads from ``proj_k``. What the shapes
cannot tell (the attention window, the logit soft-cap, whether embeddings are scaled) defaults
to the released RecurrentGemma models' values. The result is an export directory
(``train/export.py``): ``rg_recurrent`` / ``rg_attention`` mixers, causal layers
(``model.bidirectional: none``), RMSNorm scales stored as 1 + RecurrentGemma's scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from birdie_ssm.config import Config, DataConfig, ModelConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.text import Tokenizer, make_tokenizer, padded_vocab_size

# What the released RecurrentGemma models use (the package's RECURRENT_GEMMA_*_V1 presets).
WINDOW, SOFT_CAP = 2048, 30.0


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The parameter tree of a RecurrentGemma Orbax checkpoint, as NumPy arrays."""
    import orbax.checkpoint as ocp

    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise BirdieError(f"checkpoint '{path}' is not a directory (an Orbax checkpoint is one)")
    try:
        tree = ocp.PyTreeCheckpointer().restore(path)
    except Exception as exc:  # Orbax raises many types for a directory it cannot read
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise BirdieError(f"'{path}' is not an Orbax checkpoint this can read ({first})") from None
    if not isinstance(tree, Mapping):
        raise BirdieError(f"'{path}' holds no parameter tree (not a RecurrentGemma checkpoint)")
    tree = tree.get("params", tree)
    return {k: v for k, v in tree.items()} if isinstance(tree, Mapping) else {}


def _node(params: Mapping[str, Any], path: str) -> Any:
    """The leaf at slash-separated ``path``; BirdieError naming it when absent."""
    node: Any = params
    for key in path.split("/"):
        if not isinstance(node, Mapping) or key not in node:
            raise BirdieError(f"not a RecurrentGemma checkpoint: it has no '{path}'")
        node = node[key]
    return node


def _get(params: Mapping[str, Any], path: str) -> np.ndarray:
    return np.asarray(_node(params, path), dtype=np.float32)


def _shape(params: Mapping[str, Any], path: str) -> tuple[int, ...]:
    return tuple(_node(params, path).shape)


def _block_kinds(params: Mapping[str, Any]) -> list[str]:
    kinds = []
    while f"blocks.{len(kinds)}" in params:
        block = params[f"blocks.{len(kinds)}"]
        if "recurrent_block" in block:
            kinds.append("R")
        elif "attention_block" in block:
            kinds.append("A")
        else:
            raise BirdieError(
                f"not a RecurrentGemma checkpoint: blocks.{len(kinds)} has neither "
                "'recurrent_block' nor 'attention_block'"
            )
    if not kinds:
        raise BirdieError("not a RecurrentGemma checkpoint: it has no 'blocks.0'")
    return kinds


def _shortest_tile(kinds: list[str]) -> str:
    """The shortest pattern that, tiled over depth, gives ``kinds`` (RRA for RecurrentGemma)."""
    n = len(kinds)
    return next("".join(kinds[:p]) for p in range(1, n + 1)
                if all(kinds[i] == kinds[i % p] for i in range(n)))  # fmt: skip


def griffin_model_config(
    params: Mapping[str, Any],
    *,
    window: int = WINDOW,
    soft_cap: float | None = SOFT_CAP,
    scale_embeddings: bool = True,
) -> ModelConfig:
    """The ``ModelConfig`` computing what RecurrentGemma computes with ``params``."""
    vocab, width = _shape(params, "embedder/input_embedding")
    kinds = _block_kinds(params)
    mlp = _shape(params, "blocks.0/mlp_block/ffw_up/w")[-1]
    if mlp % width:
        raise BirdieError(f"MLP width {mlp} is not a multiple of the model width {width}")
    mixers: dict[str, dict[str, Any]] = {}
    if "R" in kinds:
        i = kinds.index("R")
        heads, size, _ = _shape(params, f"blocks.{i}/recurrent_block/rg_lru/a_gate/w")
        conv = _shape(params, f"blocks.{i}/recurrent_block/conv_1d/w")[0]
        mixers["rg_recurrent"] = {"lru_width": heads * size, "num_heads": heads,
                                  "conv_width": conv}  # fmt: skip
    if "A" in kinds:
        i = kinds.index("A")
        head_dim = _shape(params, f"blocks.{i}/attention_block/proj_k/kernel")[1]
        mixers["rg_attention"] = {"num_heads": width // head_dim, "window": window}
    # The reference multiplies by sqrt(width) rounded to bfloat16.
    scale = float(jnp.asarray(math.sqrt(width), jnp.bfloat16)) if scale_embeddings else 1.0
    try:
        return ModelConfig(
            mixer="rg_recurrent",
            attention_mixer="rg_attention",
            block_pattern=_shortest_tile(kinds),
            bidirectional="none",
            vocab_size=int(vocab),
            width=int(width),
            depth=len(kinds),
            mlp_expansion=mlp // width,
            mlp_bias=True,
            embed_scale=scale,
            logits_soft_cap=soft_cap or None,
            mixers=mixers,
        )
    except ValueError as exc:
        first = str(exc).splitlines()
        raise BirdieError(f"RecurrentGemma checkpoint: {' '.join(first[:3])}") from None


def griffin_tensors(params: Mapping[str, Any], model: ModelConfig) -> dict[str, np.ndarray]:
    """RecurrentGemma's parameters under birdie-ssm's flat tensor names (``export.py``)."""
    out = {
        "embedder.table": _get(params, "embedder/input_embedding"),
        # RecurrentGemma's RMSNorm multiplies by (1 + scale); ours by scale.
        "final_norm.scale": 1.0 + _get(params, "final_norm/scale"),
    }
    for i, kind in enumerate(model.layer_kinds()):
        src, dst = f"blocks.{i}/", f"blocks.{i}."
        out[dst + "mix_norm.scale"] = 1.0 + _get(params, src + "temporal_pre_norm/scale")
        out[dst + "mlp_norm.scale"] = 1.0 + _get(params, src + "channel_pre_norm/scale")
        up_w = _get(params, src + "mlp_block/ffw_up/w")
        up_b = _get(params, src + "mlp_block/ffw_up/b")
        out[dst + "mlp.gate_up.kernel"] = np.concatenate([up_w[0], up_w[1]], axis=1)
        out[dst + "mlp.gate_up.bias"] = np.concatenate([up_b[0].ravel(), up_b[1].ravel()])
        out[dst + "mlp.down.kernel"] = _get(params, src + "mlp_block/ffw_down/kernel")
        out[dst + "mlp.down.bias"] = _get(params, src + "mlp_block/ffw_down/bias")
        if kind == "rg_recurrent":
            rec = src + "recurrent_block/"
            for name in ("linear_x", "linear_y", "linear_out"):
                out[f"{dst}mixer.{name}.kernel"] = _get(params, f"{rec}{name}/kernel")
                out[f"{dst}mixer.{name}.bias"] = _get(params, f"{rec}{name}/bias")
            out[dst + "mixer.conv_1d.kernel"] = _get(params, rec + "conv_1d/w")
            out[dst + "mixer.conv_1d.bias"] = _get(params, rec + "conv_1d/b")
            out[dst + "mixer.a_param"] = _get(params, rec + "rg_lru/a_param")
            for gate in ("input_gate", "a_gate"):
                out[f"{dst}mixer.{gate}.w"] = _get(params, f"{rec}rg_lru/{gate}/w")
                out[f"{dst}mixer.{gate}.b"] = _get(params, f"{rec}rg_lru/{gate}/b")
        else:
            att = src + "attention_block/"
            for name in ("proj_q", "proj_k", "proj_v", "proj_final"):
                out[f"{dst}mixer.{name}.kernel"] = _get(params, f"{att}{name}/kernel")
            out[dst + "mixer.proj_final.bias"] = _get(params, att + "proj_final/bias")
    return out


def with_tokenizer(
    tensors: dict[str, np.ndarray], model: ModelConfig, tokenizer: Tokenizer
) -> ModelConfig:
    """Make room for the tokenizer's special tokens (appended after its own ids).

    The tokenizer must cover exactly the checkpoint's vocabulary. The embedding grows to the
    padded size; the new rows (Birdie's paradigm, sentinel and separator tokens, and padding)
    start as the mean of the pretrained rows. Changes ``tensors`` in place.
    """
    base, vocab = tokenizer.specials.base_size, model.vocab_size
    if base != vocab:
        raise BirdieError(
            f"the tokenizer has {base} tokens, the checkpoint's embedding {vocab}: they must "
            "be the same vocabulary"
        )
    table = tensors["embedder.table"]
    grown = padded_vocab_size(tokenizer)
    rows = np.broadcast_to(table.mean(axis=0), (grown - vocab, table.shape[1]))
    tensors["embedder.table"] = np.concatenate([table, rows], axis=0)
    return model.model_copy(update={"vocab_size": grown})


def tokenizer_data_config(path: str | Path | None) -> DataConfig:
    """``data`` settings naming the tokenizer file ``path`` (a tokenizers JSON, a SentencePiece
    ``.model`` such as Gemma's, or a tiktoken file); the byte tokenizer when None."""
    if path is None:
        return DataConfig()
    path = Path(path)
    kind = {".json": "hf", ".model": "sentencepiece"}.get(path.suffix, "tiktoken")
    return DataConfig(tokenizer=kind, tokenizer_path=str(path))


def convert_recurrentgemma(
    checkpoint: str | Path,
    to: str | Path,
    *,
    tokenizer: str | Path | None = None,
    window: int = WINDOW,
    soft_cap: float | None = SOFT_CAP,
    scale_embeddings: bool = True,
    force: bool = False,
) -> Path:
    """Convert a RecurrentGemma checkpoint into an export directory at ``to``; return it."""
    from birdie_ssm.train.build import build_model_for
    from birdie_ssm.train.export import load_flat_params, prepare_directory, write_export

    prepare_directory(to, force)
    params = read_checkpoint(checkpoint)
    model_config = griffin_model_config(
        params, window=window, soft_cap=soft_cap, scale_embeddings=scale_embeddings
    )
    tensors = griffin_tensors(params, model_config)
    data = tokenizer_data_config(tokenizer)
    tok = make_tokenizer(data)
    if tokenizer is not None:
        model_config = with_tokenizer(tensors, model_config, tok)
    elif tok.vocab_size > model_config.vocab_size:
        raise BirdieError(
            f"the checkpoint's vocabulary ({model_config.vocab_size}) is smaller than the byte "
            f"tokenizer's ({tok.vocab_size}); pass --tokenizer FILE"
        )
    config = Config(name=Path(to).name, model=model_config, data=data)
    model = build_model_for(config, tok)
    load_flat_params(model, tensors, f"checkpoint '{checkpoint}'")
    card = converted_card(checkpoint, config, tokenizer)
    return write_export(
        model, config, to, card=card, force=force, has_tokenizer=tokenizer is not None
    )


def converted_card(checkpoint: str | Path, config: Config, tokenizer: str | Path | None) -> str:
    """The model card of a converted checkpoint."""
    m = config.model
    text = "none (text commands refuse; training reads the byte tokenizer's ids 0-419)"
    if tokenizer is not None:
        text = f"`{Path(tokenizer).name}`, Birdie's special tokens appended (vocabulary "
        text += f"{m.vocab_size})"
    return (
        f"# {config.name}\n\nConverted from the RecurrentGemma checkpoint `{checkpoint}` by "
        "`birdie-ssm convert recurrentgemma`.\n\n"
        f"- blocks: {m.block_pattern} (R = RG-LRU recurrent block, A = local attention, window "
        f"{m.mixers.get('rg_attention', {}).get('window', '-')})\n"
        f"- width {m.width}, depth {m.depth}, MLP {m.mlp_expansion * m.width}\n"
        f"- tokenizer: {text}\n- layers causal (`model.bidirectional: none`)\n"
        "- not trained here yet: 0 steps, 0 tokens\n"
    )
