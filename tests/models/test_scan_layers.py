"""model.scan_layers: the stacked, scanned layers compute exactly what the looped ones do."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models.lm import build_model, scan_period
from birdie_ssm.train.optim import _decay_mask
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

# "RA" alternating: layers (R, bi), (A, causal), (R, bi), (A, causal), (R, bi): a period of two,
# two whole periods scanned and one layer left over.
CONFIG = ModelConfig(width=32, depth=5, block_pattern="RA", vocab_size=64)


def test_scan_period_is_the_shortest_repeat():
    assert scan_period([("R", True)] * 4) == 1
    assert scan_period([("R", True), ("R", False)] * 3) == 2
    assert scan_period([("R", True), ("R", False), ("A", True)] * 2) == 3
    assert scan_period([("R", True), ("A", True), ("R", True)]) == 2  # the remainder may be short
    assert scan_period([("R", True), ("A", True), ("A", True)]) == 3


def _copy_into_scanned(looped, scanned) -> None:
    """Give ``scanned`` the parameters of ``looped``: layer g * period + j -> stack j, row g."""
    period, groups = len(scanned.scanned), scanned.scan_groups
    for j, stack in enumerate(scanned.scanned):
        rows = [nnx.state(looped.blocks[g * period + j]) for g in range(groups)]
        nnx.update(stack, jax.tree.map(lambda *leaves: jnp.stack(leaves), *rows))
    for k, block in enumerate(scanned.blocks):
        nnx.update(block, nnx.state(looped.blocks[groups * period + k]))
    nnx.update(scanned.embedder, nnx.state(looped.embedder))
    nnx.update(scanned.final_norm, nnx.state(looped.final_norm))


@pytest.fixture(scope="module")
def pair():
    looped = build_model(CONFIG, None, nnx.Rngs(0))
    # remat on the scanned one: the checkpointed scan body must not change a value either.
    scanned_config = CONFIG.model_copy(update={"scan_layers": True, "remat": True})
    scanned = build_model(scanned_config, None, nnx.Rngs(1))
    assert (len(scanned.scanned), scanned.scan_groups, len(scanned.blocks)) == (2, 2, 1)
    assert len(looped.scanned) == 0 and len(looped.blocks) == 5
    _copy_into_scanned(looped, scanned)
    return looped, scanned


def _batch():
    ids = jnp.asarray(np.random.default_rng(0).integers(1, 64, (2, 16)), jnp.int32)
    prefix = jnp.arange(16)[None].repeat(2, 0) < 5
    segments = jnp.ones((2, 16), jnp.int32).at[1, 9:].set(2)
    return ids, prefix, segments


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_logits_and_gradients_match(pair):
    looped, scanned = pair
    ids, prefix, segments = _batch()

    def loss(model):
        return jnp.mean(model(ids, prefix, segments) ** 2)

    value_l, grads_l = nnx.value_and_grad(loss)(looped)
    value_s, grads_s = nnx.value_and_grad(loss)(scanned)
    np.testing.assert_allclose(value_s, value_l, rtol=1e-6)
    period, groups = len(scanned.scanned), scanned.scan_groups
    for j in range(period):
        rows = [grads_l["blocks"][g * period + j] for g in range(groups)]
        expected = jax.tree.map(lambda *leaves: jnp.stack(leaves), *rows)
        stacked = jax.tree.leaves(grads_s["scanned"][j])
        for a, b in zip(stacked, jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    for a, b in zip(
        jax.tree.leaves(grads_s["blocks"][0]), jax.tree.leaves(grads_l["blocks"][4]), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_prefill_and_decode_steps_match(pair):
    looped, scanned = pair
    ids, prefix, segments = _batch()
    logits_l, cache_l = looped.prefill(ids, prefix, segments, max_len=20)
    logits_s, cache_s = scanned.prefill(ids, prefix, segments, max_len=20)
    np.testing.assert_allclose(logits_s, logits_l, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(cache_s), jax.tree.leaves(cache_l), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    token = ids[:, 0]
    for _ in range(2):
        step_l, cache_l = looped.step(token, cache_l)
        step_s, cache_s = scanned.step(token, cache_s)
        np.testing.assert_allclose(step_s, step_l, rtol=1e-5, atol=1e-5)
        token = jnp.argmax(step_l, axis=-1)


def test_weight_decay_reaches_the_same_parameters(pair):
    """Stacked norm scales gain an axis; they must stay out of weight decay all the same."""
    looped, scanned = pair

    def decayed(model) -> int:
        params = nnx.state(model, nnx.Param)
        mask = _decay_mask(params)
        leaves = zip(jax.tree.leaves(params), jax.tree.leaves(mask), strict=True)
        return sum(p.size for p, m in leaves if m)

    assert decayed(scanned) == decayed(looped) > 0
    assert [type(m) for m in scanned.temporal_mixers()] == [
        type(m) for m in looped.temporal_mixers()
    ]


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_a_scanned_run_trains_checkpoints_and_restores(tmp_path):
    settings = ("model.scan_layers=true", "model.depth=4", "train.steps=4")
    settings += ("train.checkpoint_every=2", "train.log_every=2")
    trainer = Trainer(tiny_config(*settings), tmp_path / "run")
    final = trainer.fit()
    trainer.close()
    stacked = nnx.state(nnx.merge(trainer.run.graphdef, trainer.params), nnx.Param)["scanned"]
    assert len(stacked) == 1 and all(leaf.shape[0] == 4 for leaf in jax.tree.leaves(stacked))
    assert all(np.isfinite(v) for v in final.values())
    fresh = Trainer(tiny_config(*settings), tmp_path / "other")
    fresh.checkpointer = trainer.checkpointer
    fresh.restore(4)
    for a, b in zip(jax.tree.leaves(trainer.params), jax.tree.leaves(fresh.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
