"""Shapes, dtypes, factory, block patterns, mixer configs, remat and the size presets."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import BirdieLM, build_model, count_params
from birdie_ssm.models.attention import Attention
from birdie_ssm.models.gated import GatedSSM
from birdie_ssm.models.rglru import RGLRU
from tests.helpers import jit_forward

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "models"
# Expected size at a 32k vocabulary, in millions of parameters.
PRESET_SIZES = {
    "tiny": 5.0,
    "small": 14.6,
    "gated-125m": 124,
    "hawk-125m": 124,
    "transformer-125m": 117,
    "gated-1.4b": 1475,
    "hawk-1.4b": 1475,
    "transformer-1.4b": 1374,
    "griffin-125m": 122,
    "mamba-130m": 115.1,
    "jamba-125m": 122.9,
}


def _abstract(config: ModelConfig, vocab: int | None = 32) -> nnx.Module:
    """The model with shapes only (no weights computed): cheap for structural checks."""
    return nnx.eval_shape(lambda: build_model(config, vocab, nnx.Rngs(0)))


def _mixers(model: BirdieLM) -> list[type]:
    return [type(block.mixer) for block in model.blocks]


def test_block_pattern_picks_each_layers_mixer():
    heads = {"attention": {"num_heads": 2}}
    ssm = _abstract(ModelConfig(width=16, depth=2))
    transformer = _abstract(ModelConfig(arch="transformer", width=16, depth=2, mixers=heads))
    hybrid = _abstract(
        ModelConfig(mixer="rglru", block_pattern="RRA", width=16, depth=4, mixers=heads)
    )
    assert isinstance(ssm, BirdieLM) and isinstance(transformer, BirdieLM)
    assert _mixers(ssm) == [GatedSSM, GatedSSM]
    assert _mixers(transformer) == [Attention, Attention]
    # The pattern is tiled over depth (and cut where depth ends).
    assert _mixers(hybrid) == [RGLRU, RGLRU, Attention, RGLRU]


def test_transformer_arch_is_the_bidirectional_all_attention_pattern():
    heads = {"attention": {"num_heads": 2}}
    ids = jnp.arange(24, dtype=jnp.int32).reshape(2, 12) % 32
    prefix = jnp.arange(12)[None] < 5
    arch = build_model(
        ModelConfig(arch="transformer", width=16, depth=2, mixers=heads), 32, nnx.Rngs(0)
    )
    pattern = build_model(
        ModelConfig(block_pattern="A", bidirectional="all", width=16, depth=2, mixers=heads),
        32,
        nnx.Rngs(0),
    )
    np.testing.assert_array_equal(jit_forward(arch, ids, prefix), jit_forward(pattern, ids, prefix))


def test_mixers_section_holds_exactly_the_used_mixers():
    assert ModelConfig().mixers == {"gated": {"state_expansion": 1}}
    config = ModelConfig(
        mixer="rglru", block_pattern="RRA", mixers={"gated": {"state_expansion": 2}}
    )
    assert config.mixers == {
        "rglru": {"state_expansion": 1, "conv_width": 4},
        "attention": {"num_heads": 4},
    }
    assert config.layer_kinds() == ["rglru", "rglru", "attention", "rglru"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"mixer": "lstm"}, "unknown mixer 'lstm'"),
        ({"block_pattern": "RXA"}, "model.block_pattern"),
        ({"block_pattern": ""}, "model.block_pattern"),
        ({"mixers": {"gated": {"state_expansion": 0}}}, "'state_expansion' must be an integer"),
        ({"mixers": {"gated": {"state_expansoin": 2}}}, "did you mean 'state_expansion'"),
        ({"mixers": {"rglru": {"conv_width": "4"}}}, "model.mixers.rglru: parameter 'conv_width'"),
        ({"mixers": {"nosuch": {}}}, "unknown mixer 'nosuch'"),
        ({"arch": "transformer", "block_pattern": "RRA"}, "needs model.arch 'ssm'"),
    ],
)
def test_mixer_config_errors_name_the_parameter(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        ModelConfig(**kwargs)


def test_vocab_comes_from_argument_or_config():
    assert (
        BirdieLM(ModelConfig(width=16, depth=1, vocab_size=40), rngs=nnx.Rngs(0)).vocab_size == 40
    )
    with pytest.raises(BirdieError, match="vocab"):
        BirdieLM(ModelConfig(width=16, depth=1), rngs=nnx.Rngs(0))


def test_count_params_matches_closed_form():
    width, depth, vocab = 16, 2, 32
    model = _abstract(ModelConfig(width=width, depth=depth), vocab)
    # embedding + per block (two norms, 4 gate projections + forget bias + output, MLP) + norm
    per_block = 2 * width + 4 * width * width + width + width * width + 9 * width * width
    assert count_params(model) == vocab * width + depth * per_block + width


def test_bfloat16_activations_keep_float32_weights():
    """bf16 activations: float32 master weights and gradients, logits close to float32's."""
    ids = jnp.arange(24, dtype=jnp.int32).reshape(2, 12) % 32
    prefix = jnp.arange(12)[None] < 5
    results = {}
    for dtype in ("float32", "bfloat16"):
        config = ModelConfig(
            mixer="rglru", block_pattern="RA", bidirectional="all", width=16, depth=2,
            dtype=dtype, mixers={"attention": {"num_heads": 2}},
        )  # fmt: skip
        graphdef, state = nnx.split(BirdieLM(config, 32, rngs=nnx.Rngs(0)))
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state))

        @jax.jit
        def loss_and_grad(state, graphdef=graphdef):
            def loss(state):
                logits = nnx.merge(graphdef, state)(ids, prefix)
                return logits.mean(), logits

            return jax.value_and_grad(loss, has_aux=True)(state)

        results[dtype] = loss_and_grad(state)
    (_, logits32), grads32 = results["float32"]
    (_, logits16), grads16 = results["bfloat16"]
    assert logits16.dtype == jnp.float32
    # Same weights, activations rounded to bf16 (8 bits of mantissa) in every block.
    scale = float(jnp.max(jnp.abs(logits32)))
    assert float(jnp.max(jnp.abs(logits16 - logits32))) < 0.02 * scale
    assert float(jnp.max(jnp.abs(logits16 - logits32))) > 0.0  # bf16 really ran
    for g16, g32 in zip(jax.tree.leaves(grads16), jax.tree.leaves(grads32), strict=True):
        assert g16.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g16)))
        assert float(jnp.max(jnp.abs(g16 - g32))) <= 0.1 * float(jnp.max(jnp.abs(g32))) + 1e-6


@pytest.mark.parametrize("name", sorted(PRESET_SIZES))
def test_presets_load_and_have_their_size(name):
    config = load_config(PRESETS / f"{name}.yaml")
    model = _abstract(config.model, 32000)
    assert count_params(model) / 1e6 == pytest.approx(PRESET_SIZES[name], rel=0.02)


def test_every_preset_is_listed():
    assert {p.stem for p in PRESETS.glob("*.yaml")} == set(PRESET_SIZES)


def test_shape_errors_name_the_keys():
    with pytest.raises(ValueError, match="model.mixers.attention.num_heads"):
        ModelConfig(block_pattern="RA", width=20, mixers={"attention": {"num_heads": 4}})
    with pytest.raises(ValueError, match="even"):
        ModelConfig(width=9, bidirectional="alternate")


def test_remat_keeps_loss_and_grads():
    """Recomputing each block in the backward pass changes memory, not the numbers."""
    base = {"mixer": "rglru", "block_pattern": "RA", "bidirectional": "alternate"}
    ids = jnp.arange(48, dtype=jnp.int32).reshape(2, 24) % 32
    prefix = jnp.arange(24)[None] < 7
    results = []
    for remat in (False, True):
        config = ModelConfig(**base, width=16, depth=2, remat=remat, scan_impl="reference")
        graphdef, state = nnx.split(build_model(config, 32, nnx.Rngs(0)))

        @jax.jit
        def loss_and_grad(state, graphdef=graphdef):
            def loss(state):
                logits = nnx.merge(graphdef, state)(ids[:, :-1], prefix[:, :-1])
                return -jnp.mean(
                    jnp.take_along_axis(jax.nn.log_softmax(logits), ids[:, 1:, None], -1)
                )

            return jax.value_and_grad(loss)(state)

        results.append(loss_and_grad(state))
    (loss, grads), (loss_remat, grads_remat) = results
    assert float(loss) == float(loss_remat)
    for g, g_remat in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_remat), strict=True):
        np.testing.assert_allclose(np.asarray(g_remat), np.asarray(g), rtol=1e-6, atol=1e-7)


def test_blocked_attention_equals_whole(monkeypatch):
    from birdie_ssm.models import attention

    config = ModelConfig(
        arch="transformer", width=16, depth=1, mixers={"attention": {"num_heads": 2}}
    )
    model = build_model(config, 32, nnx.Rngs(0))
    ids = jnp.arange(24, dtype=jnp.int32).reshape(1, 24) % 32
    segments = jnp.asarray([[1] * 10 + [2] * 11 + [0] * 3])
    prefix = jnp.asarray([[True] * 4 + [False] * 6 + [True] * 5 + [False] * 9])
    whole = jit_forward(model, ids, prefix, segments)
    monkeypatch.setattr(attention, "QUERY_BLOCK", 8)
    blocked = jit_forward(model, ids, prefix, segments)
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-5)


def test_mlp_expansion_zero_leaves_the_mlp_out():
    """Mamba's blocks: the mixer alone (model.mlp_expansion 0)."""
    config = ModelConfig(width=16, depth=2, mlp_expansion=0)
    with_mlp = count_params(_abstract(config.model_copy(update={"mlp_expansion": 1})))
    model = build_model(config, 32, nnx.Rngs(0))
    assert count_params(model) == with_mlp - 2 * (3 * 16 * 16 + 16)  # per block: MLP, its norm
    logits = jit_forward(model, jnp.arange(8, dtype=jnp.int32)[None] % 32)
    assert logits.shape[:2] == (1, 8) and bool(jnp.isfinite(logits).all())
