"""The ``ucb`` controller: discounted UCB over arms, turned into a mixture by a softmax."""

from __future__ import annotations

from typing import Any

import numpy as np

from birdie_ssm.errors import BirdieError
from birdie_ssm.rl.base import ControllerBase, PercentileRescaler, check_probability, efficiency
from birdie_ssm.rl.controller import register_controller


@register_controller("ucb")
class UCBController(ControllerBase):
    """Scores each arm by its discounted mean rescaled reward plus ``c * sqrt(log T / n_i)``.

    An arm's evidence ``n_i`` grows with the share it was played (uniform counts one per update)
    and decays by ``gamma`` per update, so arms left at a small share get explored again. The
    mixture is ``(1 - epsilon) softmax(score / temperature) + epsilon / N``.
    """

    def __init__(
        self,
        arms: list[str],
        classes: list[str],
        reward: str = "birdie",
        *,
        c: float = 0.5,
        gamma: float = 0.9,
        temperature: float = 0.2,
        epsilon: float = 0.05,
        history: int = 500,
    ) -> None:
        super().__init__(arms, classes, reward)
        if temperature <= 0 or c < 0:
            raise BirdieError(f"ucb needs temperature > 0 and c >= 0, got {temperature}, {c}")
        self.c, self.temperature = float(c), float(temperature)
        self.gamma = check_probability("gamma", gamma)
        self.epsilon = check_probability("epsilon", epsilon)
        self.rescale = PercentileRescaler(history)
        self.counts = np.zeros(len(arms))
        self.sums = np.zeros(len(arms))

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        n = len(self.arms)
        if arm_rewards is None:
            return np.full(n, 1.0 / n)
        scaled = self.rescale(efficiency(arm_rewards, self.credit_weights, played))
        evidence = played * n
        self.counts = self.gamma * self.counts + evidence
        self.sums = self.gamma * self.sums + evidence * scaled
        counts = np.maximum(self.counts, 1e-6)
        score = self.sums / counts + self.c * np.sqrt(np.log(max(self.counts.sum(), np.e)) / counts)
        soft = np.exp((score - score.max()) / self.temperature)
        self.info["scores"] = score.tolist()
        return (1.0 - self.epsilon) * soft / soft.sum() + self.epsilon / n

    def _state(self) -> dict[str, Any]:
        return {
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "reward_history": list(self.rescale.values),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.counts = np.asarray(state["counts"], dtype=np.float64)
        self.sums = np.asarray(state["sums"], dtype=np.float64)
        self.rescale.values = [float(v) for v in state["reward_history"]]
