"""Copying: read a passage, then generate it again verbatim (``tasks.copying.copy_layout``,
shared with the copying task's native form)."""

from __future__ import annotations

from dataclasses import dataclass

from birdie_ssm.objectives.base import Objective, register_objective
from birdie_ssm.objectives.spans import draw_length, parse_band
from birdie_ssm.tasks.copying import copy_layout


@dataclass(frozen=True)
class CopyingConfig:
    """Birdie's grid: ``length`` band ``"64-256"`` or ``"256-2048"`` (None: whatever fits)."""

    length: int | str | None = "64-256"

    def __post_init__(self) -> None:
        parse_band("length", self.length, 1, 1 << 20)


@register_objective("copying")
class Copying(Objective):
    """The target equals the input passage."""

    Config = CopyingConfig

    def __init__(self, config, specials, paradigm):
        super().__init__(config, specials, paradigm)
        self.band = parse_band("length", config.length, 1, 1 << 20)

    def min_budget(self) -> int:
        return 2 * (self.band[0] if self.band else 1) + 1

    def make(self, tokens, rng, budget):
        n = draw_length(rng, self.band, len(tokens), budget // 2, 1)
        if n is None:
            return None
        inputs, target = copy_layout(tokens[:n])
        return inputs, target, tokens[n:]
