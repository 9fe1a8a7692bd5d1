"""The ``ucb`` controller: discounted UCB over arms, turned into a mixture by a softmax."""

from __future__ import annotations

import numpy as np

from birdie_ssm.curriculum.base import DiscountedController, uniform
from birdie_ssm.curriculum.controller import register_controller
from birdie_ssm.errors import BirdieError


@register_controller("ucb")
class UCBController(DiscountedController):
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
        c: float = 0.3,
        gamma: float = 0.9,
        temperature: float = 0.05,
        epsilon: float = 0.05,
        history: int = 500,
    ) -> None:
        super().__init__(arms, classes, reward)
        if temperature <= 0 or c < 0:
            raise BirdieError(f"ucb needs temperature > 0 and c >= 0, got {temperature}, {c}")
        self.c, self.temperature = float(c), float(temperature)
        self._init_evidence(gamma, epsilon, history)

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        n = len(self.arms)
        if arm_rewards is None:
            return uniform(n)
        self._add_evidence(arm_rewards, played)
        counts = np.maximum(self.counts, 1e-6)
        score = self.sums / counts + self.c * np.sqrt(np.log(max(self.counts.sum(), np.e)) / counts)
        soft = np.exp((score - score.max()) / self.temperature)
        self.info["scores"] = score.tolist()
        return (1.0 - self.epsilon) * soft / soft.sum() + self.epsilon / n
