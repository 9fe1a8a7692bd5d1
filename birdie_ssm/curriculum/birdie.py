"""The ``birdie`` controller: a learned reward model scores candidate mixtures; the best k are averaged."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.curriculum.base import ControllerBase, check_probability, uniform
from birdie_ssm.curriculum.controller import register_controller
from birdie_ssm.curriculum.reward_model import (
    RewardModel,
    fit,
    params_from_json,
    params_to_json,
    predict,
)
from birdie_ssm.errors import BirdieError


@register_controller("birdie")
class BirdieController(ControllerBase):
    """Birdie's controller (Blouir et al. 2024) with a small MLP reward model.

    History entry k holds the losses seen at evaluation k (log level and change), the mixture that
    led to them and a valid flag. At every evaluation the model is refit for ``train_steps`` steps
    on (last ``window`` entries, mixture played) -> per-arm reward, ``recency``-weighted. It then
    scores ``candidates`` mixtures (uniform simplex samples, plus a ``sparse_fraction`` on at most
    ``max_support`` arms) by their predicted class-aggregated reward and averages the ``top_k``
    best, after pulling every candidate toward the mixture just played until it differs from it by
    at most ``max_move`` (total variation): far from the mixtures it has seen, the model only
    extrapolates, and the best of thousands of extrapolated scores was often a jump to a wrong
    arm. Until step ``warmup_steps`` the mixture stays uniform; afterwards a share of a random
    mixture, decaying from ``explore_start`` to ``explore_end`` over ``explore_updates``, is mixed in.
    """

    def __init__(
        self,
        arms: list[str],
        classes: list[str],
        reward: str = "birdie",
        *,
        window: int = 4,
        hidden: int = 64,
        train_steps: int = 200,
        lr: float = 3e-3,
        candidates: int = 2048,
        sparse_fraction: float = 0.5,
        max_support: int = 3,
        top_k: int = 8,
        max_move: float = 0.3,
        warmup_steps: int = 50,
        explore_start: float = 0.5,
        explore_end: float = 0.05,
        explore_updates: int = 10,
        max_transitions: int = 64,
        recency: float = 0.95,
        seed: int = 0,
    ) -> None:
        super().__init__(arms, classes, reward)
        for name, value in [("window", window), ("hidden", hidden), ("candidates", candidates),
                            ("max_support", max_support), ("top_k", top_k),
                            ("max_transitions", max_transitions)]:  # fmt: skip
            if value < 1:
                raise BirdieError(f"birdie controller parameter '{name}' must be >= 1, got {value}")
        if top_k > candidates or train_steps < 0 or lr <= 0:
            raise BirdieError(
                "birdie controller needs top_k <= candidates, train_steps >= 0 and lr > 0, "
                f"got top_k={top_k}, candidates={candidates}, train_steps={train_steps}, lr={lr}"
            )
        self.window, self.train_steps, self.lr = int(window), int(train_steps), float(lr)
        self.candidates, self.top_k, self.max_support = (
            int(candidates),
            int(top_k),
            int(max_support),
        )
        self.sparse_fraction = check_probability("sparse_fraction", sparse_fraction)
        self.max_move = check_probability("max_move", max_move)
        self.explore_start = check_probability("explore_start", explore_start)
        self.explore_end = check_probability("explore_end", explore_end)
        self.explore_updates = max(int(explore_updates), 1)
        self.warmup_steps, self.max_transitions = int(warmup_steps), int(max_transitions)
        self.recency = check_probability("recency", recency)
        n = len(arms)
        model = RewardModel(n, self.window, 3 * n + 1, int(hidden), seed=seed)
        self.graph, self.params = nnx.split(model)
        self.rng = np.random.default_rng(seed)
        self.losses_seen: list[list[float]] = []  # losses at each evaluation
        self.actions_seen: list[list[float]] = []  # the mixture trained before each evaluation
        self.rewards_seen: list[
            list[float]
        ] = []  # per-arm reward of each evaluation after the first
        self.learned_updates = 0

    def _entry(self, k: int) -> np.ndarray:
        """Features of history entry k: log loss, its change (x10), mixture that led there, valid."""
        log_loss = np.log(np.maximum(self.losses_seen[k], 1e-9))
        prev = np.log(np.maximum(self.losses_seen[k - 1], 1e-9)) if k > 0 else log_loss
        return np.concatenate([log_loss, 10.0 * (log_loss - prev), self.actions_seen[k], [1.0]])

    def _context(self, end: int) -> np.ndarray:
        """The ``window`` entries ending at ``end``, left-padded with zeros (valid flag 0)."""
        n = len(self.arms)
        context = np.zeros((self.window, 3 * n + 1), dtype=np.float32)
        start = max(0, end - self.window + 1)
        for row, k in enumerate(range(start, end + 1), start=self.window - (end - start + 1)):
            context[row] = self._entry(k)
        return context

    def _batch(self) -> dict[str, jnp.ndarray]:
        """The last ``max_transitions`` transitions, padded to that many rows with weight 0."""
        n, cap = len(self.arms), self.max_transitions
        ends = list(range(len(self.rewards_seen)))[-cap:]
        batch = {
            "history": np.zeros((cap, self.window, 3 * n + 1), dtype=np.float32),
            "action": np.zeros((cap, n), dtype=np.float32),
            "target": np.zeros((cap, n), dtype=np.float32),
            "weight": np.zeros(cap, dtype=np.float32),
        }
        for row, j in enumerate(ends):
            # Transition j: from entry j (context), mixture actions_seen[j + 1], reward rewards_seen[j].
            batch["history"][row] = self._context(j)
            batch["action"][row] = self.actions_seen[j + 1]
            batch["target"][row] = self.rewards_seen[j]
            batch["weight"][row] = self.recency ** (len(ends) - 1 - row)
        return {k: jnp.asarray(v) for k, v in batch.items()}

    def _candidates(self) -> np.ndarray:
        """Uniform samples of the simplex, then sparse ones on 1..max_support random arms."""
        n = len(self.arms)
        sparse = int(round(self.candidates * self.sparse_fraction))
        dense = self.rng.dirichlet(np.ones(n), self.candidates - sparse)
        support = self.rng.integers(1, min(self.max_support, n) + 1, sparse)
        ranks = self.rng.random((sparse, n)).argsort(axis=1).argsort(axis=1)
        weights = self.rng.standard_gamma(1.0, (sparse, n)) * (ranks < support[:, None])
        return np.concatenate([dense, weights / weights.sum(axis=1, keepdims=True)])

    def _within_reach(self, pool: np.ndarray, played: np.ndarray) -> np.ndarray:
        """Each candidate pulled toward ``played`` until it differs by at most ``max_move`` (TV).

        The reward model only knows mixtures near those played; far from them its predictions
        are extrapolation, and the best of thousands of extrapolated scores is mostly error.
        """
        distance = 0.5 * np.abs(pool - played).sum(axis=1, keepdims=True)
        reach = np.minimum(1.0, self.max_move / np.maximum(distance, 1e-12))
        return played + reach * (pool - played)

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        self.losses_seen.append(losses.tolist())
        self.actions_seen.append(played.tolist())
        if arm_rewards is not None:
            self.rewards_seen.append(arm_rewards.tolist())
            if self.train_steps > 0:
                self.params, model_loss = fit(
                    self.graph, self.params, self._batch(), self.train_steps, self.lr
                )
                self.info["model_loss"] = float(model_loss)
        if step < self.warmup_steps or not self.rewards_seen:
            return uniform(len(self.arms))
        pool = self._within_reach(self._candidates(), played)
        context = jnp.asarray(self._context(len(self.losses_seen) - 1))
        predicted = np.asarray(predict(self.graph, self.params, context, jnp.asarray(pool)))
        scores = predicted.astype(np.float64) @ self.credit_weights
        best = np.argsort(scores)[-self.top_k :]
        progress = min(self.learned_updates / self.explore_updates, 1.0)
        explore = self.explore_start + (self.explore_end - self.explore_start) * progress
        self.learned_updates += 1
        self.info.update(predicted_reward=float(scores[best].mean()), explore=explore)
        random_mixture = self.rng.dirichlet(np.ones(len(self.arms)))
        return (1.0 - explore) * pool[best].mean(axis=0) + explore * random_mixture

    def _state(self) -> dict[str, Any]:
        return {
            "params": params_to_json(self.params),
            "rng": self.rng.bit_generator.state,
            "losses_seen": self.losses_seen,
            "actions_seen": self.actions_seen,
            "rewards_seen": self.rewards_seen,
            "learned_updates": self.learned_updates,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.params = params_from_json(self.params, state["params"])
        self.rng.bit_generator.state = state["rng"]
        self.losses_seen = [list(map(float, x)) for x in state["losses_seen"]]
        self.actions_seen = [list(map(float, x)) for x in state["actions_seen"]]
        self.rewards_seen = [list(map(float, x)) for x in state["rewards_seen"]]
        self.learned_updates = int(state["learned_updates"])
