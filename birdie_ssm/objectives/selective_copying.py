"""Selective copying: find spans in a context by their start and end delimiters and copy them.

The query lists, per span, ``<start> delimiter <end> delimiter``. Span i begins right after the
first occurrence of its start delimiter at or after the end of span i-1's end delimiter (the
context's start for the first span), and ends right before the first occurrence of its end
delimiter from there. The target is the spans separated by a marker, then the done token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from birdie_ssm.objectives.base import Objective, register_objective
from birdie_ssm.objectives.spans import draw_length, hash_rows, parse_band

# Sentinels 0..2 mark the query's start delimiter, its end delimiter, and the target's span gaps.
START, END, GAP = 0, 1, 2
ATTEMPTS = 8
MAX_DELIMITER = 64


@dataclass(frozen=True)
class SelectiveCopyingConfig:
    """Birdie's grid: 1-4 ``spans``; ``context_position`` before or after the query;
    ``context_length`` 384-768 or 768-1536; ``span_length`` 4-32; ``delimiter_length`` 1-8."""

    spans: int | str = "1-4"
    context_position: str = "before"
    context_length: int | str = "384-768"
    span_length: int | str = "4-32"
    delimiter_length: int | str = "1-8"

    def __post_init__(self) -> None:
        parse_band("spans", self.spans, 1, 64)
        if self.context_position not in ("before", "after"):
            raise ValueError(
                "parameter 'context_position' must be 'before' or 'after' (the query), "
                f"got {self.context_position!r}"
            )
        parse_band("context_length", self.context_length, 8, 1 << 20)
        parse_band("span_length", self.span_length, 1, 4096)
        parse_band("delimiter_length", self.delimiter_length, 1, MAX_DELIMITER)


@register_objective("selective_copying")
class SelectiveCopying(Objective):
    """Copy the spans of a context that the query's delimiters point at."""

    Config = SelectiveCopyingConfig

    def __init__(self, config, specials, paradigm):
        super().__init__(config, specials, paradigm)
        self.spans = parse_band("spans", config.spans, 1, 64)
        self.context = parse_band("context_length", config.context_length, 8, 1 << 20)
        self.span_len = parse_band("span_length", config.span_length, 1, 4096)
        self.delim = parse_band("delimiter_length", config.delimiter_length, 1, MAX_DELIMITER)
        self.markers = np.asarray(specials.sentinel(np.arange(3)), dtype=np.int32)

    def min_budget(self) -> int:
        k, d, s = self.spans[0], self.delim[0], self.span_len[0]
        return max(self.context[0], k * (2 * d + s)) + k * (2 * d + 2) + k * (s + 1) + 1

    def _locate(self, context, rng, k, d, lengths):
        """(start-delimiter positions, span starts, span ends) for up to ``k`` spans."""
        n = len(context)
        hashes = hash_rows(sliding_window_view(context, d))
        bounds = np.linspace(0, n, k + 1).astype(np.int64)
        found, search = [], 0
        for j in range(k):
            slot_start, slot_end = max(bounds[j], search), bounds[j + 1]
            last = slot_end - 2 * d - lengths[j]  # last start-delimiter position in this slot
            if last < slot_start:
                continue
            # Positions whose delimiter occurs there first when scanning from ``search``.
            _, first = np.unique(hashes[search : last + 1], return_index=True)
            first = first[first + search >= slot_start] + search
            for p in rng.permutation(first)[:ATTEMPTS]:
                s = p + d
                e0 = s + lengths[j]
                e = s + int(np.flatnonzero(hashes[s : e0 + 1] == hashes[e0])[0])
                if e > s:
                    found.append((p, s, e))
                    search = e + d
                    break
        return found

    def make(self, tokens, rng, budget):
        lo_k, hi_k = self.spans
        k = int(rng.integers(lo_k, hi_k + 1))
        d = int(rng.integers(self.delim[0], self.delim[1] + 1))
        lengths = rng.integers(self.span_len[0], self.span_len[1] + 1, size=k)
        fixed = k * (2 * d + 2) + int(lengths.sum()) + k
        n = draw_length(rng, self.context, len(tokens), budget - fixed, k * (2 * d + 1))
        if n is None:
            return None
        context = tokens[:n]
        found = self._locate(context, rng, k, d, lengths)
        if not found:
            return None
        p, s, e = (np.array(col, dtype=np.int64) for col in zip(*found, strict=True))
        start_marker, end_marker, gap = self.markers
        # Query: per span [START, delimiter before it, END, delimiter after it].
        grams = np.arange(d)
        query = np.empty((len(p), 2 * d + 2), dtype=np.int32)
        query[:, 0], query[:, d + 1] = start_marker, end_marker
        query[:, 1 : d + 1] = context[p[:, None] + grams]
        query[:, d + 2 :] = context[e[:, None] + grams]
        query = query.reshape(-1)
        pieces = [context[a:b] for a, b in zip(s, e, strict=True)]
        gaps = np.full(len(pieces), gap, dtype=np.int32)
        gaps[-1] = self.specials.done
        target = np.concatenate(
            [x for pair in zip(pieces, gaps[:, None], strict=True) for x in pair]
        )
        first, second = (
            (context, query) if self.config.context_position == "before" else (query, context)
        )
        return np.concatenate([first, second]), target, tokens[n:]
