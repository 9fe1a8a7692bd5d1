"""Gradient accumulation: the same global batch in k micro-batches gives the one-batch update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from birdie_ssm.birdie import Birdie
from birdie_ssm.errors import BirdieError
from birdie_ssm.models import build_model
from birdie_ssm.text import padded_vocab_size
from birdie_ssm.train.build import build_run
from birdie_ssm.train.steps import make_train_step, micro_batches
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def setup():
    config = tiny_config("data.batch_size=8", "model.bidirectional=alternate")
    with Birdie.from_config(config) as birdie:
        batch = birdie.next_batch().model_inputs()
        vocab = padded_vocab_size(birdie.tokenizer)
        arms = len(birdie.arm_names)
    graphdef, params = nnx.split(build_model(config.model, vocab, nnx.Rngs(0)))
    return graphdef, params, {k: jnp.asarray(v) for k, v in batch.items()}, arms


def test_micro_batches_take_every_kth_row():
    x = jnp.arange(12).reshape(6, 2)
    got = micro_batches({"x": x}, 3)["x"]
    assert got.shape == (3, 2, 2)
    np.testing.assert_array_equal(got[1], x[1::3])


OPTIMIZER = optax.sgd(0.5)  # the update is the gradient itself, so it is compared exactly


def train_once(setup, accum):
    graphdef, params, batch, arms = setup
    step = make_train_step(graphdef, OPTIMIZER, arms, grad_accum=accum)
    fresh = jax.tree.map(jnp.copy, params)  # the step donates its inputs
    return step(fresh, OPTIMIZER.init(fresh), batch)


@pytest.fixture(scope="module")
def one_batch(setup):
    return train_once(setup, 1)


@pytest.mark.parametrize("k", [2, 4])
def test_k_micro_batches_update_as_one_batch(setup, one_batch, k):
    params = setup[1]
    (one, _, m1), (acc, _, mk) = one_batch, train_once(setup, k)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(acc), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    assert not all(  # the step moved the parameters, so the comparison means something
        np.allclose(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(params), strict=True)
    )
    np.testing.assert_allclose(m1["loss"], mk["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], mk["grad_norm"], rtol=1e-4)
    # Per-arm loss sums and target tokens are counted for the whole step, in batch order.
    np.testing.assert_allclose(m1["arm_loss_sums"], mk["arm_loss_sums"], rtol=1e-5)
    np.testing.assert_array_equal(m1["arm_counts"], mk["arm_counts"])


def test_grad_accum_must_divide_the_batch():
    with pytest.raises(BirdieError, match="train.grad_accum 3 must divide data.batch_size 4"):
        build_run(tiny_config("train.grad_accum=3"))
