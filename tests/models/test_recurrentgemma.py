"""RecurrentGemma conversion against the reference package: logits, packed segments, greedy
decoding with its sampler, the 2B model's parameter count, and checkpoints that are not
RecurrentGemma."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model, count_params, generate
from birdie_ssm.train.convert import (
    convert_recurrentgemma,
    griffin_model_config,
    griffin_tensors,
)
from birdie_ssm.train.export import load_export, load_flat_params

# The reference package compiles slowly (minutes on a loaded 2-core CPU): its comparisons are
# slow tests. ``recurrentgemma`` installs without its dependency pins: docs/weights.md.
slow_reference = pytest.mark.slow

VOCAB, LENGTH, WINDOW = 512, 16, 6  # a window shorter than the sequence, so it matters
PATTERNS = {"griffin": "RRA", "hawk": "RR"}


def _reference_package():
    return pytest.importorskip("recurrentgemma.jax"), pytest.importorskip("recurrentgemma.common")


def _types(pattern: str) -> tuple:
    _, common = _reference_package()
    kind = {"R": common.TemporalBlockType.RECURRENT, "A": common.TemporalBlockType.ATTENTION}
    return tuple(kind[c] for c in pattern)


def _reference(pattern: str):
    rg, common = _reference_package()
    config = common.GriffinConfig(
        vocab_size=VOCAB, width=32, mlp_expanded_width=96, num_heads=4, lru_width=48,
        block_types=_types(pattern), embeddings_scale_by_sqrt_dim=True,
        attention_window_size=WINDOW, logits_soft_cap=30.0,
    )  # fmt: skip
    model = rg.Griffin(config)
    tokens = jnp.zeros((1, LENGTH), jnp.int32)
    params = model.init(jax.random.key(0), tokens, jnp.arange(LENGTH)[None])["params"]
    # Norm scales and biases start at 0: perturb every leaf so that each one matters.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return model, jax.tree.map(np.asarray, jax.tree.unflatten(tree, leaves))


@pytest.fixture(scope="module", params=sorted(PATTERNS))
def pair(request):
    """(reference model, its params, our converted model) for Griffin and Hawk."""
    model, params = _reference(PATTERNS[request.param])
    config = griffin_model_config(params, window=WINDOW)
    ours = build_model(config, None, nnx.Rngs(0))
    load_flat_params(ours, griffin_tensors(params, config), "reference")
    return model, params, ours


def _relative(ours, ref) -> float:
    return float(jnp.max(jnp.abs(ours - ref)) / jnp.max(jnp.abs(ref)))


@slow_reference
def test_logits_equal_the_reference(pair):
    model, params, ours = pair
    tokens = jax.random.randint(jax.random.key(2), (2, LENGTH), 0, VOCAB)
    ref, _ = model.apply({"params": params}, tokens, jnp.arange(LENGTH)[None].repeat(2, 0),
                         return_cache=False)  # fmt: skip
    error = _relative(ours(tokens), ref)
    print(f"max |logit difference| / max |logit|: {error:.2g}")
    assert error <= 1e-4


@slow_reference
def test_packed_documents_equal_the_reference(pair):
    """Two documents in one row: the conv, the RG-LRU and attention restart at the second."""
    model, params, ours = pair
    tokens = jax.random.randint(jax.random.key(3), (1, LENGTH), 0, VOCAB)
    half = LENGTH // 2
    positions = jnp.concatenate([jnp.arange(half), jnp.arange(LENGTH - half)])[None]
    segments = jnp.concatenate([jnp.ones(half, jnp.int32), jnp.full(LENGTH - half, 2)])[None]
    ref, _ = model.apply({"params": params}, tokens, positions, return_cache=False)
    assert _relative(ours(tokens, segment_ids=segments), ref) <= 1e-4


class _IdVocab:
    """The few SentencePiece methods the reference sampler calls, over ids written as text."""

    def EncodeAsIds(self, text: str) -> list[int]:  # noqa: N802
        return [int(t) for t in text.split()]

    def DecodeIds(self, ids: list[int]) -> str:  # noqa: N802
        return " ".join(map(str, ids))

    def bos_id(self) -> int:
        return 2

    def eos_id(self) -> int:
        return -1  # never generated: every run decodes all its steps

    def pad_id(self) -> int:
        return 0


@slow_reference
def test_greedy_decoding_equals_the_reference_sampler(pair):
    model, params, ours = pair
    prompt = [int(t) for t in np.random.default_rng(4).integers(3, VOCAB, 7)]
    rg, _ = _reference_package()
    sampler = rg.Sampler(model=model, vocab=_IdVocab(), params=params)
    steps = 12  # past the attention window
    want = np.asarray(sampler([" ".join(map(str, prompt))], steps).tokens[0])
    got = generate(ours, [[2, *prompt]], steps, prefix_len=0)[0]
    np.testing.assert_array_equal(got, want)


@slow_reference
def test_the_2b_shapes_give_the_reference_parameter_count():
    rg, common = _reference_package()
    config = common.GriffinConfig.from_preset(common.Preset.RECURRENT_GEMMA_2B_V1)
    model = rg.Griffin(config)
    tokens = jnp.zeros((1, 4), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), tokens, jnp.arange(4)[None])
    want = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    ours = griffin_model_config(shapes["params"])
    assert (ours.width, ours.depth, ours.block_pattern[:3]) == (2560, 26, "RRA")
    abstract = nnx.eval_shape(lambda: build_model(ours, None, nnx.Rngs(0)))
    assert count_params(abstract) == want


def test_a_checkpoint_that_is_not_recurrentgemma_is_named(tmp_path):
    import orbax.checkpoint as ocp

    bad = {"embedder": {"input_embedding": np.zeros((8, 4), np.float32)}}
    ocp.PyTreeCheckpointer().save(tmp_path / "ckpt", {"params": bad})
    with pytest.raises(BirdieError, match="no 'blocks.0'") as info:
        convert_recurrentgemma(tmp_path / "ckpt", tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(BirdieError, match="not a directory"):
        convert_recurrentgemma(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(BirdieError, match="not empty; pass --force"):
        convert_recurrentgemma(tmp_path / "ckpt", tmp_path / "full")


@slow_reference
def test_conversion_writes_an_export_that_loads(tmp_path, pair):
    import orbax.checkpoint as ocp

    model, params, ours = pair
    ocp.PyTreeCheckpointer().save(tmp_path / "ckpt", {"params": params})
    out = convert_recurrentgemma(tmp_path / "ckpt", tmp_path / "run", window=WINDOW)
    run = load_export(out)
    tokens = jax.random.randint(jax.random.key(5), (1, LENGTH), 0, VOCAB)
    np.testing.assert_array_equal(run.model(tokens), ours(tokens))
    assert run.config.model.bidirectional == "none"
    with pytest.raises(BirdieError, match="without a tokenizer"):
        run.tokenizer.encode("text")


@slow_reference
def test_a_converted_model_trains_20_birdie_steps(tmp_path, pair):
    import json

    import orbax.checkpoint as ocp

    from birdie_ssm.cli import main

    _, params, _ = pair
    ocp.PyTreeCheckpointer().save(tmp_path / "ckpt", {"params": params})
    run = tmp_path / "converted"
    assert main(["convert", "recurrentgemma", str(tmp_path / "ckpt"), "--to", str(run),
                 "--window", str(WINDOW)]) == 0  # fmt: skip
    settings = ["train.steps=20", "data.seq_len=64", "data.batch_size=4", "train.log_every=5",
                "train.checkpoint_every=20", "train.progress=false", "eval.scale=0.2"]  # fmt: skip
    argv = ["train", "--config", str(run / "config.json"), "--init-from", str(run),
            "--run-dir", str(tmp_path / "birdie")]  # fmt: skip
    argv += [arg for setting in settings for arg in ("--set", setting)]
    assert main(argv) == 0
    records = [json.loads(line) for line in (tmp_path / "birdie" / "metrics.jsonl").open()]
    train = [r for r in records if r["kind"] == "train"]
    assert train[-1]["step"] == 20 and np.isfinite(train[-1]["loss"])
    assert any(r["kind"] == "eval" for r in records)


@slow_reference
def test_a_tokenizer_of_the_checkpoints_vocabulary_grows_the_embedding(tmp_path, pair):
    """Birdie's specials are appended: the checkpoint's own ids keep their logits exactly."""
    import orbax.checkpoint as ocp
    import tokenizers

    _, params, ours = pair
    ocp.PyTreeCheckpointer().save(tmp_path / "ckpt", {"params": params})
    vocab = {f"w{i}": i for i in range(VOCAB - 1)} | {"[UNK]": VOCAB - 1}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    out = convert_recurrentgemma(
        tmp_path / "ckpt", tmp_path / "run", tokenizer=tmp_path / "tokenizer.json", window=WINDOW
    )
    run = load_export(out)
    assert run.model.vocab_size == 704  # 512 ids + 164 specials, padded to a multiple of 64
    assert run.tokenizer.specials.sep == VOCAB + 2
    tokens = jax.random.randint(jax.random.key(6), (1, LENGTH), 0, VOCAB)
    # A wider read-out matmul may block its sums differently: equal up to float32 rounding.
    np.testing.assert_allclose(run.model(tokens)[..., :VOCAB], ours(tokens), rtol=1e-6, atol=1e-6)
    assert list(run.tokenizer.encode("w3 w7")) == [3, 7]
