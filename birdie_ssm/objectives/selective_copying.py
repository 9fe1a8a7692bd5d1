"""Selective copying: find spans in a context by their start and end delimiters and copy them.

The query lists, per span, ``<start> delimiter <end> delimiter``. Span i begins right after the
first occurrence of its start delimiter at or after the end of span i-1's end delimiter (the
context's start for the first span), and ends right before the first occurrence of its end
delimiter from there. Spans are placed where that reading gives exactly the drawn
``span_length`` (a start whose end delimiter occurs inside the span is redrawn). The target is
the spans separated by a marker, then the done token. The layout is
``tasks.copying.selective_copying_layout``, shared with the selective-copying task's native form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdie_ssm.objectives.base import Objective, register_objective
from birdie_ssm.objectives.spans import WEIGHTS, draw_int, draw_length, parse_band
from birdie_ssm.tasks.copying import END, GAP, START, selective_copying_layout

__all__ = ["END", "GAP", "START", "SelectiveCopying", "SelectiveCopyingConfig", "gram_hashes"]
MAX_DELIMITER = 64
MAX_TRIES = 64  # start positions drawn per span before its slot is left out


def gram_hashes(context: np.ndarray, d: int) -> np.ndarray:
    """A 64-bit hash of every window of ``d`` tokens (``len(context) - d + 1`` of them)."""
    m = len(context) - d + 1
    values = context.astype(np.uint64)
    out = values[:m] * WEIGHTS[0]
    for i in range(1, d):  # d <= MAX_DELIMITER multiply-adds over the whole context
        out += values[i : i + m] * WEIGHTS[i]
    return out


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

    def min_budget(self) -> int:
        k, d, s = self.spans[0], self.delim[0], self.span_len[0]
        return max(self.context[0], k * (2 * d + s)) + k * (2 * d + 2) + k * (s + 1) + 1

    def _locate(self, context, rng, k, d, lengths):
        """(start-delimiter position, span start, span end) for up to ``k`` spans, one per slot.

        A reader finds span j at the first occurrence of its start delimiter since the end of
        span j-1, and ends it at the first occurrence of its end delimiter from there. A start
        position is redrawn (up to ``MAX_TRIES`` times) until the span read that way has exactly
        the drawn length: its end delimiter occurs nowhere inside it. A slot where no draw
        succeeds is left out."""
        n = len(context)
        hashes = gram_hashes(context, d)
        found, search = [], 0
        for j in range(k):
            slot_start, slot_end, length = max(j * n // k, search), (j + 1) * n // k, lengths[j]
            last = slot_end - 2 * d - length  # last start-delimiter position in the slot
            if last < slot_start:
                continue
            for _ in range(MAX_TRIES):  # a few array operations per try, no per-token work
                p = draw_int(rng, slot_start, last)
                # Move to the delimiter's first occurrence since ``search``: what a reader finds.
                p = search + int(np.argmax(hashes[search : p + 1] == hashes[p]))
                s, e = p + d, p + d + length
                if not (hashes[s:e] == hashes[e]).any():
                    found.append((p, s, e))
                    search = e + d
                    break
        return found

    def make(self, tokens, rng, budget):
        lo_k, hi_k = self.spans
        k = draw_int(rng, lo_k, hi_k)
        d = draw_int(rng, self.delim[0], self.delim[1])
        lo_s, hi_s = self.span_len
        lengths = (lo_s + rng.random(k) * (hi_s - lo_s + 1)).astype(np.int64).tolist()
        fixed = k * (2 * d + 2) + sum(lengths) + k
        n = draw_length(rng, self.context, len(tokens), budget - fixed, k * (2 * d + 1))
        if n is None:
            return None
        context = tokens[:n]
        found = self._locate(context, rng, k, d, lengths)
        if not found:
            return None
        inputs, target = selective_copying_layout(
            context, found, d, self.specials, self.config.context_position
        )
        return inputs, target, tokens[n:]
