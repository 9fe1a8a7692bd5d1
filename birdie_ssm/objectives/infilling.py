"""Infilling (T5/UL2 span corruption): masked spans become numbered sentinels in the input;
the target lists each sentinel followed by the tokens it replaced. The layout is
``tasks.infilling.sentinel_layout``, shared with the infilling task's native form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdie_ssm.objectives.base import register_objective
from birdie_ssm.objectives.spans import (
    MIN_SPAN_PASSAGE,
    SpanMasking,
    check_masking,
    passage_limits,
)
from birdie_ssm.tasks.infilling import sentinel_layout

__all__ = ["MIN_PASSAGE", "Infilling", "InfillingConfig", "sentinel_layout"]

MIN_PASSAGE = MIN_SPAN_PASSAGE


@dataclass(frozen=True)
class InfillingConfig:
    """UL2's R denoisers are (mean_span 3 or 8, mask_rate 0.15), X (3 or 8, 0.5) and (64, 0.15/0.5).

    ``length``: passage length band, e.g. ``"128-256"`` (None: as long as the budget allows).
    Each masked span gets its own sentinel: a passage masks at most ``NUM_SENTINELS`` spans, and
    longer ones where it would need more (see ``spans.span_counts``).
    """

    mask_rate: float = 0.15
    mean_span: float = 3.0
    length: int | str | None = None

    def __post_init__(self) -> None:
        check_masking(self.mask_rate, self.mean_span)
        passage_limits(self.length, self.mask_rate, self.mean_span)


@register_objective("infilling")
class Infilling(SpanMasking):
    """Span corruption: the input has sentinels where spans were masked; the target fills them."""

    Config = InfillingConfig

    def _cost(self, n: int) -> int:
        return n + 2 * self._span_counts(n)[1] if n > 1 else n

    def make(self, tokens, rng, budget):
        drawn = self._draw_spans(tokens, rng, budget)
        if drawn is None:
            return None
        n, _, spans, lengths = drawn
        sentinels = np.asarray(self.specials.sentinel(np.arange(spans)), dtype=np.int32)
        inputs, targets = sentinel_layout(tokens[:n], lengths, sentinels)
        return inputs, targets, tokens[n:]
