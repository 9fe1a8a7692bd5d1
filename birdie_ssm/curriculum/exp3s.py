"""The ``exp3s`` controller: Exp3.S (Graves et al. 2017) over arms, with rescaled rewards."""

from __future__ import annotations

from typing import Any

import numpy as np

from birdie_ssm.curriculum.base import ControllerBase, RewardScaler, credited
from birdie_ssm.curriculum.controller import register_controller
from birdie_ssm.errors import check_range


@register_controller("exp3s")
class Exp3SController(ControllerBase):
    """p = (1 - epsilon) softmax(w) + epsilon / N; w follows rescaled per-arm reward with fixed
    share.

    Each arm's credited reward is scaled into [-1, 1] by the 80th percentile of the last
    ``history`` reward magnitudes (signs kept, see ``RewardScaler``); every arm is observed at
    every evaluation, so no importance weighting by play share. ``share`` mixes weight between
    arms so the controller can follow a best arm that changes.
    """

    def __init__(
        self,
        arms: list[str],
        classes: list[str],
        reward: str = "birdie",
        *,
        eta: float = 0.6,
        epsilon: float = 0.05,
        share: float = 0.01,
        history: int = 500,
    ) -> None:
        super().__init__(arms, classes, reward)
        self.eta = float(eta)
        self.epsilon = check_range("epsilon", epsilon, 0.0, 1.0)
        self.share = check_range("share", share, 0.0, 1.0)
        self.rescale = RewardScaler(history)
        self.weights = np.zeros(len(arms))

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        if arm_rewards is not None:
            scaled = self.rescale(credited(arm_rewards, self.credit_weights))
            grown = self.weights + self.eta * scaled
            # Fixed share, computed in log space around the maximum for stability.
            top = grown.max()
            mass = np.exp(grown - top)
            n = len(self.arms)
            others = (mass.sum() - mass) / max(n - 1, 1)
            self.weights = top + np.log((1.0 - self.share) * mass + self.share * others)
            self.weights -= self.weights.max()
            self.info["scaled_rewards"] = scaled.tolist()
        soft = np.exp(self.weights - self.weights.max())
        return (1.0 - self.epsilon) * soft / soft.sum() + self.epsilon / len(self.arms)

    def _state(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "reward_history": list(self.rescale.values)}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.weights = np.asarray(state["weights"], dtype=np.float64)
        self.rescale.values = [float(v) for v in state["reward_history"]]
