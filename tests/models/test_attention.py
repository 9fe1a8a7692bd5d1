"""Attention through jax.nn.dot_product_attention equals the explicit masked softmax it
replaced; the implementation choice (auto / cudnn / xla) and its errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import attention, build_model
from birdie_ssm.models.attention import block_mask, choose_impl, compare_impls, requested_impl
from birdie_ssm.models.masks import make_context
from tests.helpers import PREFIX, SEGMENTS, explicit_mix, jit_forward


def _loss_and_grads(model, ids):
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state):
        def loss(state):
            logits = nnx.merge(graphdef, state)(ids, jnp.asarray(PREFIX), jnp.asarray(SEGMENTS))
            return jnp.mean(logits**2), logits

        return jax.value_and_grad(loss, has_aux=True)(state)

    (_, logits), grads = run(state)
    return logits, grads


@pytest.mark.parametrize(
    ("dtype", "query_block"), [("float32", 512), ("float32", 8), ("bfloat16", 8)]
)
def test_fused_path_equals_explicit_softmax(dtype, query_block, monkeypatch):
    config = ModelConfig(
        mixer="gated",
        block_pattern="A",
        bidirectional="alternate",
        width=32,
        depth=2,
        dtype=dtype,
        mixers={"attention": {"num_heads": 4}},
    )
    model = build_model(config, 48, nnx.Rngs(0))
    ids = jax.random.randint(jax.random.key(1), SEGMENTS.shape, 0, 48)
    monkeypatch.setattr(attention, "QUERY_BLOCK", query_block)
    logits, grads = _loss_and_grads(model, ids)
    monkeypatch.setattr(attention, "_sdpa", lambda q, k, v, mask, impl: explicit_mix(q, k, v, mask))
    want_logits, want_grads = _loss_and_grads(model, ids)
    tol = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(logits, want_logits, rtol=tol, atol=tol)
    for g, w in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        scale = float(jnp.max(jnp.abs(w))) + 1e-12
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(w) / scale, atol=tol)


def test_mask_is_causal_in_segments_and_full_in_prefix_runs():
    """The mask every implementation receives, checked against its definition cell by cell."""
    segs, prefix = jnp.asarray(SEGMENTS), jnp.asarray(PREFIX)
    runs = make_context(SEGMENTS.shape, prefix, segs).runs
    mask = np.asarray(block_mask(segs, runs, jnp.arange(SEGMENTS.shape[1])))[:, 0]
    for b in range(SEGMENTS.shape[0]):
        for t in range(SEGMENTS.shape[1]):
            for s in range(SEGMENTS.shape[1]):
                same_seg = SEGMENTS[b, t] == SEGMENTS[b, s]
                lo, hi = sorted((s, t))
                # t sees a later s only inside one contiguous prefix stretch of its segment
                stretch = slice(lo, hi + 1)
                same_run = (
                    PREFIX[b, stretch].all() and (SEGMENTS[b, stretch] == SEGMENTS[b, t]).all()
                )
                assert mask[b, t, s] == (same_seg and (s <= t or same_run)), (b, t, s)


def test_auto_takes_xla_off_gpu_and_cudnn_request_is_a_clear_error(monkeypatch):
    if jax.default_backend() == "gpu":
        pytest.skip("CPU behaviour")
    assert choose_impl("auto", jnp.bfloat16, 64, 2048) == "xla"
    assert choose_impl("xla", jnp.bfloat16, 64, 2048) == "xla"
    with pytest.raises(BirdieError, match="BIRDIE_ATTENTION_IMPL=cudnn cannot be used: backend"):
        choose_impl("cudnn", jnp.bfloat16, 64, 2048)
    monkeypatch.setenv("BIRDIE_ATTENTION_IMPL", "flash")
    with pytest.raises(BirdieError, match="'flash' is not one of auto, cudnn, xla"):
        requested_impl()
    monkeypatch.setenv("BIRDIE_ATTENTION_IMPL", "XLA")
    assert requested_impl() == "xla"


def test_probe_runs_eagerly_while_a_step_is_traced():
    """``auto`` decides while the train step is traced: the probe must still compute values."""
    seen = []

    @jax.jit
    def traced(x):
        seen.append(compare_impls("xla", "float32"))
        return x

    traced(1.0)
    assert seen == [None]


def test_cudnn_branch_gets_the_whole_row_and_its_mask(monkeypatch):
    """Off a GPU, the cuDNN branch's wiring: one call over the whole row (no query blocks, even
    past QUERY_BLOCK) with the full prefix-LM mask; here served by the xla path."""
    calls = []

    def recording_sdpa(q, k, v, mask, impl):
        calls.append((impl, q.shape, mask.shape))
        return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")

    config = ModelConfig(
        arch="transformer", width=16, depth=1, mixers={"attention": {"num_heads": 2}}
    )
    model = build_model(config, 32, nnx.Rngs(0))
    ids = jax.random.randint(jax.random.key(1), SEGMENTS.shape, 0, 32)
    segs, prefix = jnp.asarray(SEGMENTS), jnp.asarray(PREFIX)
    monkeypatch.setattr(attention, "QUERY_BLOCK", 8)
    blocked = jit_forward(model, ids, prefix, segs)
    monkeypatch.setattr(attention, "choose_impl", lambda *args: "cudnn")
    monkeypatch.setattr(attention, "_sdpa", recording_sdpa)
    whole = jit_forward(model, ids, prefix, segs)
    assert calls == [("cudnn", (2, 32, 2, 8), (2, 1, 32, 32))]
    np.testing.assert_allclose(whole, blocked, rtol=1e-5, atol=1e-5)
