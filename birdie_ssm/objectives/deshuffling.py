"""Deshuffling: a fraction of the passage's tokens trade places; the target is the original."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdie_ssm.errors import check_range
from birdie_ssm.objectives.autoencoding import derangement_order
from birdie_ssm.objectives.base import Objective, register_objective
from birdie_ssm.objectives.spans import draw_length, parse_band

MIN_PASSAGE = 2


@dataclass(frozen=True)
class DeshufflingConfig:
    """Birdie's grid: ``shuffle_rate`` 0.5 or 1.0 of the tokens permuted among themselves.

    ``length``: passage length band such as ``"128-512"`` (None: whatever fits).
    """

    shuffle_rate: float = 0.5
    length: int | str | None = None

    def __post_init__(self) -> None:
        check_range("shuffle_rate", self.shuffle_rate, 0.01, 1.0)
        parse_band("length", self.length, MIN_PASSAGE, 1 << 20)


@register_objective("deshuffling")
class Deshuffling(Objective):
    """Restore the original order of a partly shuffled passage."""

    Config = DeshufflingConfig

    def __init__(self, config, specials, paradigm):
        super().__init__(config, specials, paradigm)
        self.band = parse_band("length", config.length, MIN_PASSAGE, 1 << 20)

    def min_budget(self) -> int:
        return 2 * (self.band[0] if self.band else MIN_PASSAGE) + 1

    def make(self, tokens, rng, budget):
        n = draw_length(rng, self.band, len(tokens), budget // 2, MIN_PASSAGE)
        if n is None:
            return None
        passage = tokens[:n]
        k = max(2, round(self.config.shuffle_rate * n))
        if k >= n:
            inputs = passage[derangement_order(rng, n)]
        else:
            chosen = np.sort(rng.choice(n, size=k, replace=False))
            inputs = passage.copy()
            inputs[chosen] = passage[chosen[derangement_order(rng, k)]]
        return inputs, passage, tokens[n:]
