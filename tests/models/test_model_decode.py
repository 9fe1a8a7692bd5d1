"""Recurrent / KV-cache decoding reproduces the full forward pass; ``generate`` behaves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model, generate
from birdie_ssm.models.decode import pack_prompts
from tests.helpers import tiny_mixers

VOCAB = 32
PROMPTS = [[3, 1, 4, 1, 5, 9, 2], [6, 5, 3, 5]]
CONTINUATION = np.array([[7, 2, 8, 1, 8], [2, 8, 4, 5, 9]], np.int32)
# (arch, recurrent mixer, bidirectional, block pattern)
VARIANTS = [
    ("ssm", "gated", "all", "R"),
    ("ssm", "rglru", "alternate", "R"),
    ("ssm", "rglru", "none", "R"),
    ("transformer", "gated", "none", "R"),
    ("ssm", "rglru", "alternate", "RRA"),
    ("ssm", "gated", "all", "AR"),
    ("ssm", "rg_recurrent", "alternate", "RRA"),
    ("ssm", "rg_recurrent", "none", "RRA"),
    ("ssm", "mamba", "alternate", "R"),
    ("ssm", "s4d", "alternate", "R"),
    ("ssm", "s5", "all", "R"),
    ("ssm", "lru", "alternate", "R"),
    ("ssm", "mamba", "none", "RRRA"),  # a Jamba-style hybrid
]


def _tiny(arch: str, mixer: str, bidirectional: str, pattern: str = "R") -> nnx.Module:
    config = ModelConfig(
        arch=arch,
        mixer=mixer,
        block_pattern=pattern,
        bidirectional=bidirectional,
        width=32,
        depth=max(2, len(pattern)),
        **tiny_mixers(mixer, chunk=4),
    )
    return build_model(config, VOCAB, nnx.Rngs(0))


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: "-".join(v))
def teacher_forced(request):
    """A jitted function: (prompt arrays) -> (full-pass logits, prefill + step logits)."""
    graphdef, state = nnx.split(_tiny(*request.param))

    @jax.jit
    def run(ids, prefix_mask, segment_ids, continuation):
        model = nnx.merge(graphdef, state)
        length, new = ids.shape[1], continuation.shape[1]
        full = model(
            jnp.concatenate([ids, continuation], axis=1),
            jnp.pad(prefix_mask, ((0, 0), (0, new))),
            jnp.pad(segment_ids, ((0, 0), (0, new)), constant_values=1),
        )
        first, cache = model.prefill(ids, prefix_mask, segment_ids, length + new)

        def step(cache, token):
            logits, cache = model.step(token, cache)
            return cache, logits

        _, rest = jax.lax.scan(step, cache, continuation.T)
        decoded = jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)
        return full[:, length - 1 :], decoded

    return run


@pytest.mark.parametrize("prefix_len", [None, 0, 3], ids=["prefix", "causal", "partial"])
def test_decoding_matches_full_forward(teacher_forced, prefix_len):
    ids, prefix_mask, segment_ids = pack_prompts(PROMPTS, prefix_len)
    full, decoded = teacher_forced(ids, prefix_mask, segment_ids, CONTINUATION)
    np.testing.assert_allclose(np.asarray(decoded), np.asarray(full), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def ssm() -> nnx.Module:
    return _tiny("ssm", "rglru", "alternate")


@pytest.fixture(scope="module")
def hybrid() -> nnx.Module:
    """Two recurrent blocks, then one attention block."""
    return _tiny("ssm", "rglru", "alternate", "RRA")


@pytest.mark.parametrize("name", ["ssm", "hybrid"])
def test_generate_greedy_is_argmax_of_full_forward(name, request):
    ssm = request.getfixturevalue(name)
    out = generate(ssm, PROMPTS, 6)
    assert out.shape == (2, 6) and out.dtype == np.int32
    full = [list(p) + list(o) for p, o in zip(PROMPTS, out, strict=True)]
    ids, _, segment_ids = pack_prompts(full, None)
    prompt_ids, prompt_prefix, _ = pack_prompts(PROMPTS, None)
    # The prefix is the prompt only: left-padded, so it sits in the first columns.
    prefix_mask = np.pad(prompt_prefix, ((0, 0), (0, 6)))
    graphdef, state = nnx.split(ssm)
    forward = jax.jit(lambda state, *arrays: nnx.merge(graphdef, state)(*arrays))
    logits = forward(state, ids, prefix_mask, segment_ids)
    predicted = np.asarray(jnp.argmax(logits, axis=-1))[:, prompt_ids.shape[1] - 1 : -1]
    np.testing.assert_array_equal(predicted, out)


def test_generate_top1_sampling_equals_greedy_and_stop_token(ssm):
    greedy = generate(ssm, PROMPTS, 6)
    sampled = generate(ssm, PROMPTS, 6, temperature=0.7, top_k=1, rng=3)
    np.testing.assert_array_equal(sampled, greedy)
    stop = int(greedy[0, 1])
    stopped = generate(ssm, PROMPTS, 6, stop_token=stop)
    first = int(np.argmax(greedy[0] == stop))
    np.testing.assert_array_equal(stopped[0, : first + 1], greedy[0, : first + 1])
    assert np.all(stopped[0, first:] == stop)


def test_generate_rejects_bad_arguments(ssm):
    with pytest.raises(BirdieError, match="max_new_tokens"):
        generate(ssm, PROMPTS, 0)
    with pytest.raises(BirdieError, match="top_k"):
        generate(ssm, PROMPTS, 2, temperature=1.0, top_k=VOCAB + 1)
    with pytest.raises(BirdieError, match="prompt"):
        generate(ssm, [[]], 2)
