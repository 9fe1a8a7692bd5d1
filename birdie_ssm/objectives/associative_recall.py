"""Associative recall: the passage is cut into key-value pairs; the query lists some keys and
the target gives, for each, the value that follows its first occurrence as a key. The layout is
``tasks.mqar.recall_layout``, shared with the mqar task's native form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdie_ssm.errors import check_range
from birdie_ssm.objectives.base import Objective, register_objective
from birdie_ssm.objectives.spans import draw_int, draw_length, hash_rows, parse_band
from birdie_ssm.tasks.mqar import QUERY, recall_layout

__all__ = ["QUERY", "AssociativeRecall", "AssociativeRecallConfig"]


SMALL_TABLE = 256  # up to this many pairs a dict finds first occurrences faster than np.unique


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Positions of each distinct key's first occurrence, ascending (each distinct key is asked
    about its first occurrence only)."""
    if len(keys) <= SMALL_TABLE:
        seen: dict[int, int] = {}
        for i, key in enumerate(keys.tolist()):
            seen.setdefault(key, i)
        return np.fromiter(seen.values(), dtype=np.int64, count=len(seen))
    return np.sort(np.unique(keys, return_index=True)[1])


@dataclass(frozen=True)
class AssociativeRecallConfig:
    """``pairs``: band of key-value pairs; keys of ``key_length`` tokens, values of
    ``value_length``; ``queries``: band of keys asked (capped at the distinct keys)."""

    pairs: int | str = "8-64"
    key_length: int = 4
    value_length: int = 8
    queries: int | str = "1-4"

    def __post_init__(self) -> None:
        parse_band("pairs", self.pairs, 1, 1 << 16)
        check_range("key_length", self.key_length, 1, 4096, integer=True)
        check_range("value_length", self.value_length, 1, 4096, integer=True)
        parse_band("queries", self.queries, 1, 1 << 16)


@register_objective("associative_recall")
class AssociativeRecall(Objective):
    """Recall the value stored under each queried key."""

    Config = AssociativeRecallConfig

    def __init__(self, config, specials, paradigm):
        super().__init__(config, specials, paradigm)
        self.pairs = parse_band("pairs", config.pairs, 1, 1 << 16)
        self.queries = parse_band("queries", config.queries, 1, 1 << 16)
        self.width = config.key_length + config.value_length

    def min_budget(self) -> int:
        return self.pairs[0] * self.width + 2 + self.queries[0] * self.width + 1

    def make(self, tokens, rng, budget):
        # Few draws and small arrays per example: with one- or two-token targets this arm is
        # drawn dozens of times per row under a token-balanced mixture.
        kl, w = self.config.key_length, self.width
        q = draw_int(rng, *self.queries)
        cap = (budget - 2 - q * w) // w
        pairs = draw_length(rng, self.pairs, len(tokens) // w, cap, max(1, self.pairs[0]))
        if pairs is None:
            return None
        table = tokens[: pairs * w].reshape(pairs, w)
        first = first_occurrences(table[:, 0] if kl == 1 else hash_rows(table[:, :kl]))
        if q == 1:
            asked = first[[draw_int(rng, 0, len(first) - 1)]]
        else:  # a uniform random subset, in random order
            asked = first[np.argsort(rng.random(len(first)))[:q]]
        inputs, target = recall_layout(table, asked, kl, self.specials)
        return inputs, target, tokens[pairs * w :]
