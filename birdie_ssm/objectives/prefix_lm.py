"""Prefix language modelling: read the first part of a passage, generate the rest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdie_ssm.errors import check_range
from birdie_ssm.objectives.base import Objective, register_objective


@dataclass(frozen=True)
class PrefixLMConfig:
    """The split point is ``prefix_fraction`` of the passage, jittered by ``±jitter``."""

    prefix_fraction: float = 0.75
    jitter: float = 0.1
    min_length: int = 8

    def __post_init__(self) -> None:
        check_range("prefix_fraction", self.prefix_fraction, 0.01, 0.99)
        check_range("jitter", self.jitter, 0.0, 0.5)
        check_range("min_length", self.min_length, 2, 1 << 20, integer=True)


@register_objective("prefix_lm")
class PrefixLM(Objective):
    """Read the first part of a passage bidirectionally, then generate the rest."""

    Config = PrefixLMConfig

    def min_budget(self) -> int:
        return self.config.min_length + 1  # the passage, and the paradigm token

    def make(self, tokens, rng, budget):
        n = min(len(tokens), budget)
        if n < self.config.min_length:
            return None
        frac = self.config.prefix_fraction + self.config.jitter * (2 * rng.random() - 1)
        split = int(np.clip(round(n * frac), 1, n - 1))
        return tokens[:split], tokens[split:n], tokens[n:]
