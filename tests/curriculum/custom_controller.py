"""A controller defined outside the package (used by the plug-in tests).

Listed in ``controller.modules`` as ``tests.curriculum.custom_controller``, or advertised in the
``birdie_ssm.controllers`` entry-point group, it registers itself on import. It does not derive
from ``ControllerBase``: it implements the ``Controller`` protocol directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from birdie_ssm.curriculum import register_controller


@register_controller("test_greedy")
class Greedy:
    """Puts ``share`` of the mixture on the arm with the highest validation loss."""

    def __init__(self, arms: list[str], classes: list[str], reward: str = "birdie", *, share=0.5):
        self.arms, self.classes, self.share = arms, classes, float(share)
        self.mixture = np.full(len(arms), 1.0 / len(arms))
        self.updates: list[int] = []
        self.info: dict[str, Any] = {}

    @classmethod
    def create(cls, arms, classes, mixture, **params) -> Greedy:
        return cls(arms, classes, **params)  # starts uniform whatever the configured mixture

    def initial_mixture(self) -> np.ndarray:
        return self.mixture.copy()

    def update(self, step, val_losses, played=None) -> np.ndarray:
        rest = (1.0 - self.share) / len(self.arms)
        self.mixture = np.full(len(self.arms), rest)
        self.mixture[int(np.nanargmax(val_losses))] += self.share
        self.updates.append(int(step))
        self.info = {"step": int(step), "hardest": self.arms[int(np.nanargmax(val_losses))]}
        return self.mixture.copy()

    def state_dict(self) -> dict[str, Any]:
        return {"mixture": self.mixture.tolist(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mixture = np.asarray(state["mixture"])
        self.updates = list(state["updates"])
