"""Shapes, dtypes, factory, parameter counts and the size presets."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import BirdieLM, TransformerLM, build_model, count_params

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
}


def _abstract(config: ModelConfig, vocab: int | None = 32) -> nnx.Module:
    """The model with shapes only (no weights computed): cheap for structural checks."""
    return nnx.eval_shape(lambda: build_model(config, vocab, nnx.Rngs(0)))


def test_build_model_picks_the_architecture():
    ssm = _abstract(ModelConfig(width=16, depth=1))
    transformer = _abstract(ModelConfig(arch="transformer", width=16, depth=1, num_heads=2))
    assert isinstance(ssm, BirdieLM) and isinstance(transformer, TransformerLM)


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
    config = ModelConfig(mixer="rglru", bidirectional="all", width=16, depth=2, dtype="bfloat16")
    model = BirdieLM(config, 32, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state))
    ids = jnp.arange(24, dtype=jnp.int32).reshape(2, 12) % 32
    prefix = jnp.arange(12)[None] < 5

    @jax.jit
    def loss_and_grad(state):
        def loss(state):
            return nnx.merge(graphdef, state)(ids, prefix).mean()

        return jax.value_and_grad(loss)(state)

    loss, grads = loss_and_grad(state)
    assert np.isfinite(float(loss))
    assert all(
        g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads)
    )


@pytest.mark.parametrize("name", sorted(PRESET_SIZES))
def test_presets_load_and_have_their_size(name):
    config = load_config(PRESETS / f"{name}.yaml")
    model = _abstract(config.model, 32000)
    assert count_params(model) / 1e6 == pytest.approx(PRESET_SIZES[name], rel=0.02)


def test_every_preset_is_listed():
    assert {p.stem for p in PRESETS.glob("*.yaml")} == set(PRESET_SIZES)


def test_shape_errors_name_the_keys():
    with pytest.raises(ValueError, match="num_heads"):
        ModelConfig(arch="transformer", width=20, num_heads=4)
    with pytest.raises(ValueError, match="even"):
        ModelConfig(width=9, bidirectional="alternate")


def test_blocked_attention_equals_whole(monkeypatch):
    from birdie_ssm.models import transformer

    config = ModelConfig(arch="transformer", width=16, depth=1, num_heads=2)
    model = build_model(config, 32, nnx.Rngs(0))
    ids = jnp.arange(24, dtype=jnp.int32).reshape(1, 24) % 32
    segments = jnp.asarray([[1] * 10 + [2] * 11 + [0] * 3])
    prefix = jnp.asarray([[True] * 4 + [False] * 6 + [True] * 5 + [False] * 9])
    whole = model(ids, prefix, segments)
    monkeypatch.setattr(transformer, "QUERY_BLOCK", 8)
    np.testing.assert_allclose(model(ids, prefix, segments), whole, rtol=1e-5, atol=1e-5)
