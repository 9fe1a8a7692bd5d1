"""Packing examples into fixed-length rows: the Batch the model and the loss consume.

An example occupies ``input + [sep] + target + [eod]`` in its row. The model reads the input and
the separator bidirectionally (``prefix_mask``); the loss covers the positions that predict the
target and the end-of-document token, so generation learns where to stop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from birdie_ssm.objectives.base import Example
from birdie_ssm.text.tokenizer import SpecialTokens

OVERHEAD = 2  # the separator and the end-of-document token


@dataclass
class Batch:
    """Packed rows, all ``[batch, length]``; ``segment_ids`` 0 and ``arm_ids`` -1 mark padding."""

    input_ids: np.ndarray
    target_ids: np.ndarray
    loss_mask: np.ndarray
    segment_ids: np.ndarray
    positions: np.ndarray
    prefix_mask: np.ndarray
    arm_ids: np.ndarray

    # Kept on the host only: the model recomputes positions from segment_ids (models/masks.py),
    # so sending them to the device every step would be a wasted transfer.
    HOST_ONLY: ClassVar[frozenset[str]] = frozenset({"positions"})

    def as_dict(self) -> dict[str, np.ndarray]:
        """Every field (what a data worker hands to the trainer)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The fields a train or eval step reads: all but ``HOST_ONLY``."""
        return {k: v for k, v in self.as_dict().items() if k not in self.HOST_ONLY}


class RowBuilder:
    """Collects the examples of one row of ``length`` tokens; ``stack_rows`` lays them out."""

    def __init__(self, length: int, specials: SpecialTokens) -> None:
        self.length, self.specials = length, specials
        self.marks = np.array([specials.sep, specials.eod], dtype=np.int32)
        self.pieces: list[np.ndarray] = []
        self.input_lengths: list[int] = []
        self.sizes: list[int] = []
        self.arms: list[int] = []
        self.used = 0

    @property
    def count(self) -> int:
        return len(self.sizes)

    def budget(self) -> int:
        """Tokens an objective may still use in this row (input + target)."""
        return self.length - self.used - OVERHEAD

    def add(self, example: Example, arm: int) -> None:
        """Append ``example`` (which must fit ``budget()``) as the next segment."""
        n_in, m = len(example.input_ids), len(example) + OVERHEAD
        if m > self.length - self.used:
            raise ValueError(f"example of {m} tokens does not fit in {self.length - self.used}")
        self.pieces += [example.input_ids, self.marks[:1], example.target_ids, self.marks[1:]]
        self.input_lengths.append(n_in)
        self.sizes.append(m)
        self.arms.append(arm)
        self.used += m


def stack_rows(rows: list[RowBuilder]) -> Batch:
    """A Batch from filled rows, laid out for all rows at once (vectorised)."""
    batch, length, pad = len(rows), rows[0].length, rows[0].specials.pad
    counts = np.array([r.count for r in rows], dtype=np.int64)
    sizes = np.array([m for r in rows for m in r.sizes], dtype=np.int64)
    n_in = np.array([n for r in rows for n in r.input_lengths], dtype=np.int64)
    arms = np.array([a for r in rows for a in r.arms], dtype=np.int32)
    pieces = [p for r in rows for p in r.pieces]
    tokens = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
    total = len(tokens)
    # Each row's segments fill its first ``used`` slots, in order: a boolean mask places them.
    filled = np.arange(length) < np.array([r.used for r in rows])[:, None]
    ends = np.cumsum(sizes)
    seg_of = np.repeat(np.arange(len(sizes)), sizes)  # each token's segment (flat numbering)
    pos = np.arange(total) - (ends - sizes)[seg_of]
    segment = np.arange(len(sizes)) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    targets = np.empty_like(tokens)
    targets[:-1] = tokens[1:]
    targets[ends - 1] = pad  # the eod predicts nothing
    prefix = (n_in + 1)[seg_of]  # the input and the separator

    def lay(values: np.ndarray, fill: int | bool, dtype: type) -> np.ndarray:
        out = np.full((batch, length), fill, dtype=dtype)
        out[filled] = values
        return out

    return Batch(
        input_ids=lay(tokens, pad, np.int32),
        target_ids=lay(targets, pad, np.int32),
        loss_mask=lay((pos >= prefix - 1) & (pos < (sizes - 1)[seg_of]), False, bool),
        segment_ids=lay(segment[seg_of], 0, np.int32),
        positions=lay(pos, 0, np.int32),
        prefix_mask=lay(pos < prefix, False, bool),
        arm_ids=lay(arms[seg_of], -1, np.int32),
    )
