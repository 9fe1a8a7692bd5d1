"""The ``thompson`` controller: Gaussian Thompson sampling over arms; mixture = P(arm is best)."""

from __future__ import annotations

from typing import Any

import numpy as np

from birdie_ssm.curriculum.base import DiscountedController
from birdie_ssm.curriculum.controller import register_controller
from birdie_ssm.errors import BirdieError


@register_controller("thompson")
class ThompsonController(DiscountedController):
    """Keeps a discounted Gaussian posterior of each arm's rescaled reward.

    The mixture is the fraction of ``samples`` posterior draws in which each arm is best, mixed
    with ``epsilon`` of uniform. Evidence grows with the share played and decays by ``gamma``.
    """

    def __init__(
        self,
        arms: list[str],
        classes: list[str],
        reward: str = "birdie",
        *,
        samples: int = 256,
        noise: float = 0.5,
        prior: float = 1.0,
        gamma: float = 0.9,
        epsilon: float = 0.05,
        history: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__(arms, classes, reward)
        if samples < 1 or noise <= 0 or prior <= 0:
            raise BirdieError(
                f"thompson needs samples >= 1, noise > 0 and prior > 0, "
                f"got {samples}, {noise}, {prior}"
            )
        self.samples, self.noise, self.prior = int(samples), float(noise), float(prior)
        self._init_evidence(gamma, epsilon, history)
        self.rng = np.random.default_rng(seed)

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        n = len(self.arms)
        if arm_rewards is not None:
            self._add_evidence(arm_rewards, played)
        # Prior: mean 0 worth ``prior`` observations.
        precision = self.counts + self.prior
        mean = self.sums / precision
        draws = mean + self.noise / np.sqrt(precision) * self.rng.standard_normal((self.samples, n))
        wins = np.bincount(draws.argmax(axis=1), minlength=n) / self.samples
        self.info["posterior_mean"] = mean.tolist()
        return (1.0 - self.epsilon) * wins + self.epsilon / n

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "rng": self.rng.bit_generator.state}

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self.rng.bit_generator.state = state["rng"]
