"""Gradient proof of the bidirectional-to-causal invariant for every model variant: no output
depends on a later target position or on another segment."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models import build_model
from tests.helpers import tiny_mixers

# (arch, recurrent mixer, bidirectional, block pattern); hybrids mix recurrent and attention
# blocks, "A" alone under arch ssm is a (causal or prefix-LM) Transformer built from the pattern.
VARIANTS = [
    ("ssm", mixer, bidirectional, "R")
    for mixer in ("gated", "rglru")
    for bidirectional in ("none", "alternate", "all")
] + [
    # The SSM families, each once (compile time): bidirectional halves in every layer, or causal.
    ("ssm", "mamba", "all", "R"),
    ("ssm", "s4d", "all", "R"),
    ("ssm", "s5", "all", "R"),
    ("ssm", "lru", "none", "R"),
    ("ssm", "mamba", "alternate", "RRRA"),  # a Jamba-style hybrid
    ("transformer", "gated", "none", "R"),
    ("ssm", "rglru", "alternate", "RRA"),
    ("ssm", "gated", "none", "RRA"),
    ("ssm", "gated", "none", "A"),
    ("ssm", "rg_recurrent", "alternate", "RRA"),
]

# One packed row: [prefix 0-5 | target 6-10] [prefix 11-14 | target 15-17] [padding 18-19],
# plus a fully causal segment in a second row to cover segments without a prefix.
SEGMENTS = np.array([[1] * 11 + [2] * 7 + [0] * 2, [3] * 8 + [4] * 12])
PREFIX = np.array(
    [[True] * 6 + [False] * 5 + [True] * 4 + [False] * 5, [True] * 3 + [False] * 5 + [False] * 12]
)


def _dependency(arch: str, mixer: str, bidirectional: str, pattern: str) -> np.ndarray:
    """|d logits[t] / d embedding[s]| summed over features: [batch, t, s]."""
    config = ModelConfig(
        arch=arch,
        mixer=mixer,
        block_pattern=pattern,
        bidirectional=bidirectional,
        width=16,
        depth=max(2, len(pattern)),
        scan_impl="reference",
        **tiny_mixers(mixer, chunk=8),
    )
    model = build_model(config, 32, nnx.Rngs(0))
    ids = jax.random.randint(jax.random.key(1), SEGMENTS.shape, 0, 32)
    x = model.embed(ids)
    # A random projection of the logits keeps exact zeros exact and makes the rest non-zero.
    proj = jax.random.normal(jax.random.key(2), (*SEGMENTS.shape, 32))

    @jax.jit
    def jacobian(x: jax.Array) -> jax.Array:
        def projected(x):
            logits = model.forward_embeddings(x, jnp.asarray(PREFIX), jnp.asarray(SEGMENTS))
            return jnp.sum(logits * proj, axis=-1)

        return jax.jacrev(projected)(x)  # [B, L, B, L, D]

    jac = np.abs(np.asarray(jacobian(x))).sum(-1)
    batch = np.arange(SEGMENTS.shape[0])
    return jac[batch, :, batch]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: "-".join(v))
def dependency(request) -> tuple[tuple[str, str, str], np.ndarray]:
    return request.param, _dependency(*request.param)


def _pairs(rule) -> np.ndarray:
    length = SEGMENTS.shape[1]
    t, s = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    return np.stack([rule(b, t, s) for b in range(SEGMENTS.shape[0])])


def test_no_dependency_across_segments(dependency):
    _, dep = dependency
    other = _pairs(lambda b, t, s: SEGMENTS[b][t] != SEGMENTS[b][s])
    assert np.all(dep[other] == 0.0)


def test_no_dependency_on_later_targets(dependency):
    _, dep = dependency
    later_target = _pairs(lambda b, t, s: (s > t) & ~PREFIX[b][s])
    assert np.all(dep[later_target] == 0.0)


def test_causal_dependencies_present(dependency):
    _, dep = dependency
    earlier = _pairs(lambda b, t, s: (s <= t) & (SEGMENTS[b][t] == SEGMENTS[b][s]))
    assert np.all(dep[earlier] > 0.0)


def test_later_prefix_positions_seen_only_by_bidirectional_layers(dependency):
    (arch, _, bidirectional, _), dep = dependency
    inside_prefix = _pairs(
        lambda b, t, s: (s > t) & PREFIX[b][t] & PREFIX[b][s] & (SEGMENTS[b][t] == SEGMENTS[b][s])
    )
    assert inside_prefix.any()
    if arch == "transformer" or bidirectional != "none":
        assert np.all(dep[inside_prefix] > 0.0)
    else:
        assert np.all(dep[inside_prefix] == 0.0)
