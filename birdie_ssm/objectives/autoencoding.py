"""Autoencoding: the input is the passage with masked spans (and optionally its clean spans
shuffled); the target is the whole original passage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdie_ssm.objectives.base import register_objective
from birdie_ssm.objectives.spans import (
    MIN_SPAN_PASSAGE,
    SpanMasking,
    check_masking,
    concat_ranges,
    parse_band,
)

MIN_PASSAGE = MIN_SPAN_PASSAGE


@dataclass(frozen=True)
class AutoencodingConfig:
    """Birdie's grid: mask_rate 0.15 or 0.85, mean_span 3/8/32, shuffle on or off.

    ``shuffle``: permute the order of the unmasked spans (never left in their original order).
    ``length``: passage length band such as ``"256-512"`` (None: as long as the budget allows).
    """

    mask_rate: float = 0.15
    mean_span: float = 3.0
    shuffle: bool = False
    length: int | str | None = None

    def __post_init__(self) -> None:
        check_masking(self.mask_rate, self.mean_span)
        if not isinstance(self.shuffle, bool):
            raise ValueError(f"parameter 'shuffle' must be true or false, got {self.shuffle!r}")
        parse_band("length", self.length, MIN_PASSAGE, 1 << 20)


def derangement_order(rng: np.random.Generator, k: int) -> np.ndarray:
    """A random order of ``k`` items that is never the identity (for ``k >= 2``)."""
    order = rng.permutation(k)
    if k > 1 and np.array_equal(order, np.arange(k)):
        order = np.roll(order, 1)
    return order


@register_objective("autoencoding")
class Autoencoding(SpanMasking):
    """Reconstruct the original passage from a span-masked (and optionally shuffled) copy."""

    Config = AutoencodingConfig

    def _cost(self, n: int) -> int:
        if n < 2:
            return 2 * n
        noise, spans = self._span_counts(n)
        return 2 * n - noise + spans

    def make(self, tokens, rng, budget):
        drawn = self._draw_spans(tokens, rng, budget)
        if drawn is None:
            return None
        n, noise, spans, lengths = drawn
        passage = tokens[:n]
        clean_len = lengths[0::2]
        clean_start = np.cumsum(lengths)[0::2] - clean_len
        if self.config.shuffle:
            order = derangement_order(rng, spans)
            clean_start, clean_len = clean_start[order], clean_len[order]
        # Output: clean run i (in the chosen order), then sentinel i.
        sentinel_pos = np.cumsum(clean_len + 1) - 1
        inputs = np.empty(n - noise + spans, dtype=np.int32)
        keep = np.ones(len(inputs), dtype=bool)
        keep[sentinel_pos] = False
        inputs[keep] = passage[concat_ranges(clean_start, clean_len)]
        inputs[sentinel_pos] = self.specials.sentinel(np.arange(spans))
        return inputs, passage, tokens[n:]
