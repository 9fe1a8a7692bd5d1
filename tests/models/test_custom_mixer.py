"""A mixer defined outside the package registers, configures, trains, decodes and stays causal."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.models import Mixer, MixerConfig, build_model, register_mixer
from birdie_ssm.models.decode import pack_prompts
from birdie_ssm.models.layers import dense

VOCAB = 32


@dataclass(frozen=True)
class ShiftConfig(MixerConfig):
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.scale <= 10.0:
            raise ValueError(f"parameter 'scale' must lie in (0, 10], got {self.scale!r}")


@register_mixer("test_shift")
class ShiftMixer(Mixer):
    """y_t = W x_{t-1} (same segment), plus V x_{t+1} where t+1 is in t's prefix (bidirectional)."""

    Config = ShiftConfig

    def __init__(self, config, params: ShiftConfig, bidirectional: bool, *, rngs: nnx.Rngs):
        self.scale, self.bidirectional = params.scale, bidirectional
        self.prev = dense(config.width, config.width, jnp.float32, rngs)
        self.next = dense(config.width, config.width, jnp.float32, rngs)

    def __call__(self, x, ctx):
        prev = jnp.pad(x[:, :-1], ((0, 0), (1, 0), (0, 0)))
        y = self.prev(jnp.where(ctx.fwd_keep[..., None], prev, 0.0))
        if self.bidirectional:
            nxt = jnp.pad(x[:, 1:], ((0, 0), (0, 1), (0, 0)))
            y = y + self.next(jnp.where(ctx.rev_keep[..., None], nxt, 0.0))
        return self.scale * y, x[:, -1]

    def step(self, x, cache, ctx):
        # A generated token is a target: it has no later prefix neighbour to read.
        return self.scale * self.prev(cache), x


CONFIG = ModelConfig(
    mixer="test_shift",
    block_pattern="RA",
    bidirectional="alternate",
    width=16,
    depth=2,
    mixers={"test_shift": {"scale": 0.5}, "attention": {"num_heads": 2}},
)


@pytest.fixture(scope="module")
def model() -> nnx.Module:
    return build_model(CONFIG, VOCAB, nnx.Rngs(0))


def test_config_validates_with_the_mixers_own_dataclass():
    assert CONFIG.layer_kinds() == ["test_shift", "attention"]
    assert CONFIG.mixers["test_shift"] == {"scale": 0.5}
    with pytest.raises(ValueError, match="'scale' must lie in"):
        ModelConfig(mixer="test_shift", mixers={"test_shift": {"scale": -1.0}})
    with pytest.raises(ValueError, match="accepted: scale"):
        ModelConfig(mixer="test_shift", mixers={"test_shift": {"width": 3}})


def test_trains_a_step(model):
    graphdef, params = nnx.split(model)
    ids = jax.random.randint(jax.random.key(0), (2, 17), 0, VOCAB)
    prefix = jnp.arange(16)[None] < 6
    optimizer = optax.adam(1e-2)

    @jax.jit
    def train_step(params, opt_state):
        def loss_fn(params):
            logits = nnx.merge(graphdef, params)(ids[:, :-1], prefix)
            return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return loss, optax.apply_updates(params, updates), opt_state

    loss0, params, opt_state = train_step(params, optimizer.init(params))
    loss1, _, _ = train_step(params, opt_state)
    assert np.isfinite(float(loss0)) and float(loss1) < float(loss0)


def test_causal_over_targets_and_segments(model):
    segments = np.array([[1] * 9 + [2] * 7])
    prefix = np.array([[True] * 4 + [False] * 5 + [True] * 3 + [False] * 4])
    x = model.embed(jnp.arange(16)[None] % VOCAB)
    proj = jax.random.normal(jax.random.key(2), (1, 16, VOCAB))

    def projected(x):
        logits = model.forward_embeddings(x, jnp.asarray(prefix), jnp.asarray(segments))
        return jnp.sum(logits * proj, axis=-1)

    dep = np.abs(np.asarray(jax.jit(jax.jacrev(projected))(x))).sum(-1)[0, :, 0]
    t, s = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    assert np.all(dep[segments[0][t] != segments[0][s]] == 0.0)
    assert np.all(dep[(s > t) & ~prefix[0][s]] == 0.0)
    # Layer 0 (bidirectional) reads the next position where it lies in the same prefix.
    next_in_prefix = (s == t + 1) & prefix[0][t] & prefix[0][s] & (segments[0][t] == segments[0][s])
    assert next_in_prefix.any() and np.all(dep[next_in_prefix] > 0.0)


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_decoding_matches_full_forward(model):
    ids, prefix_mask, segment_ids = pack_prompts([[3, 1, 4, 1, 5], [9, 2, 6]], None)
    continuation = np.array([[7, 2, 8], [1, 8, 2]], np.int32)
    full = model(
        np.concatenate([ids, continuation], axis=1),
        np.pad(prefix_mask, ((0, 0), (0, 3))),
        np.pad(segment_ids, ((0, 0), (0, 3)), constant_values=1),
    )
    logits, cache = model.prefill(ids, prefix_mask, segment_ids, ids.shape[1] + 3)
    decoded = [logits]
    for token in continuation.T:
        logits, cache = model.step(jnp.asarray(token), cache)
        decoded.append(logits)
    np.testing.assert_allclose(
        np.stack(decoded[:-1], axis=1), full[:, ids.shape[1] - 1 : -1], rtol=1e-4, atol=1e-4
    )
