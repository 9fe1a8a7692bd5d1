"""The Birdie controller's reward model: (history window, candidate mixture) -> per-arm reward.

The candidate enters the network directly beside the encoded history, so every prediction is a
function of the candidate; there is no sequence position to read, padded or otherwise.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class RewardModel(nnx.Module):
    """A small MLP: history features and candidate are embedded, summed, then mapped to rewards."""

    def __init__(self, n_arms: int, window: int, features: int, hidden: int, *, seed: int) -> None:
        rngs = nnx.Rngs(seed)
        self.history = nnx.Linear(window * features, hidden, rngs=rngs)
        self.candidate = nnx.Linear(n_arms, hidden, rngs=rngs)
        self.mix = nnx.Linear(hidden, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, n_arms, rngs=rngs)

    def __call__(self, history: jax.Array, candidate: jax.Array) -> jax.Array:
        """``history`` [B, window, features], ``candidate`` [B, n_arms] -> rewards [B, n_arms]."""
        h = self.history(history.reshape(history.shape[0], -1)) + self.candidate(candidate)
        h = nnx.gelu(self.mix(nnx.gelu(h)))
        return jnp.tanh(self.out(h))


def _loss(graph: nnx.GraphDef, params: nnx.State, batch: dict[str, jax.Array]) -> jax.Array:
    model = nnx.merge(graph, params)
    err = (model(batch["history"], batch["action"]) - batch["target"]) ** 2
    return jnp.sum(err.mean(axis=1) * batch["weight"]) / jnp.maximum(batch["weight"].sum(), 1e-9)


@partial(jax.jit, static_argnums=0)
def fit(
    graph: nnx.GraphDef,
    params: nnx.State,
    batch: dict[str, jax.Array],
    steps: jax.Array,
    lr: jax.Array,
) -> tuple[nnx.State, jax.Array]:
    """``steps`` full-batch Adam steps from ``params`` (a fresh optimiser); new params, final loss.

    Rows with weight 0 are padding, which keeps every shape fixed so this compiles once.
    """
    opt = optax.adam(lr)
    grad = jax.value_and_grad(partial(_loss, graph))

    def body(
        _: jax.Array, carry: tuple[nnx.State, Any, jax.Array]
    ) -> tuple[nnx.State, Any, jax.Array]:
        p, state, _loss_value = carry
        value, g = grad(p, batch)
        updates, state = opt.update(g, state, p)
        return optax.apply_updates(p, updates), state, value

    params, _, value = jax.lax.fori_loop(0, steps, body, (params, opt.init(params), jnp.zeros(())))
    return params, value


@partial(jax.jit, static_argnums=0)
def predict(
    graph: nnx.GraphDef, params: nnx.State, history: jax.Array, candidates: jax.Array
) -> jax.Array:
    """Per-arm rewards [C, n_arms] of each candidate after one ``history`` [window, features]."""
    model = nnx.merge(graph, params)
    tiled = jnp.broadcast_to(history, (candidates.shape[0], *history.shape))
    return model(tiled, candidates)


def params_to_json(params: nnx.State) -> list[Any]:
    """The parameter leaves as nested lists (float32 values survive a JSON round trip exactly)."""
    return [np.asarray(leaf).tolist() for leaf in jax.tree.leaves(params)]


def params_from_json(like: nnx.State, leaves: list[Any]) -> nnx.State:
    """Parameters shaped like ``like`` filled from ``params_to_json`` output."""
    old, treedef = jax.tree.flatten(like)
    new = [jnp.asarray(v, dtype=o.dtype).reshape(o.shape) for v, o in zip(leaves, old, strict=True)]
    return jax.tree.unflatten(treedef, new)
