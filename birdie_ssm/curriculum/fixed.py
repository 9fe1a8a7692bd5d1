"""The ``fixed`` controller: a mixture that never changes (the configured one unless ``weights``
are given; uniform when built without either)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from birdie_ssm.curriculum.base import ControllerBase
from birdie_ssm.curriculum.controller import normalise, register_controller
from birdie_ssm.errors import BirdieError


@register_controller("fixed")
class FixedController(ControllerBase):
    """Keeps the mixture it was given (``weights``, uniform by default); still logs the rewards."""

    def __init__(
        self,
        arms: list[str],
        classes: list[str],
        reward: str = "birdie",
        *,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(arms, classes, reward)
        if weights is not None:
            if len(weights) != len(arms):
                raise BirdieError(f"fixed controller: {len(weights)} weights for {len(arms)} arms")
            self.mixture = normalise(np.asarray(weights, dtype=np.float64))

    @classmethod
    def create(
        cls, arms: list[str], classes: list[str], mixture: list[float] | None, **params: Any
    ) -> FixedController:
        """The configured mixture is the fixed mixture, unless ``weights`` are given."""
        if mixture is not None:
            params.setdefault("weights", mixture)
        return cls(arms, classes, **params)

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        return self.mixture
