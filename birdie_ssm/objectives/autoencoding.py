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
    passage_limits,
)

MIN_PASSAGE = MIN_SPAN_PASSAGE


@dataclass(frozen=True)
class AutoencodingConfig:
    """Birdie's grid: mask_rate 0.15 or 0.85, mean_span 3/8/32, shuffle on or off.

    ``shuffle``: permute the order of the unmasked spans (never left in their original order:
    every shuffled passage is laid out with at least two unmasked spans, so passages leaving
    fewer than two unmasked tokens are refused).
    ``length``: passage length band such as ``"256-512"`` (None: as long as the budget allows).
    Each masked span gets its own sentinel: a passage masks at most ``NUM_SENTINELS`` spans, and
    longer ones where it would need more (see ``spans.span_counts``).
    """

    mask_rate: float = 0.15
    mean_span: float = 3.0
    shuffle: bool = False
    length: int | str | None = None

    def __post_init__(self) -> None:
        check_masking(self.mask_rate, self.mean_span)
        if not isinstance(self.shuffle, bool):
            raise ValueError(f"parameter 'shuffle' must be true or false, got {self.shuffle!r}")
        passage_limits(self.length, self.mask_rate, self.mean_span, clean_runs(self.shuffle))


def clean_runs(shuffle: bool) -> int:
    """Unmasked runs a layout needs: two to shuffle (one run has no other order), else one."""
    return 2 if shuffle else 1


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

    @property
    def min_clean_runs(self) -> int:
        return clean_runs(self.config.shuffle)

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
        starts = np.cumsum(lengths) - lengths
        # The non-empty clean runs (the outer two may be empty), in passage order.
        slots = np.flatnonzero((np.arange(len(lengths)) % 2 == 0) & (lengths > 0))
        clean_start, clean_len = starts[slots], lengths[slots]
        if self.config.shuffle:
            order = derangement_order(rng, len(slots))
            clean_start, clean_len = clean_start[order], clean_len[order]
        # Input: the runs in passage order, each noise run as its sentinel (noise run i ->
        # sentinel i) and each clean slot filled with a clean run in the chosen order.
        out_len = np.arange(len(lengths)) % 2  # a sentinel per noise run; empty outer runs: 0
        out_len[slots] = clean_len
        sentinel_pos = (np.cumsum(out_len) - out_len)[1::2]
        inputs = np.empty(n - noise + spans, dtype=np.int32)
        keep = np.ones(len(inputs), dtype=bool)
        keep[sentinel_pos] = False
        inputs[keep] = passage[concat_ranges(clean_start, clean_len)]
        inputs[sentinel_pos] = self.specials.sentinel(np.arange(spans))
        return inputs, passage, tokens[n:]
