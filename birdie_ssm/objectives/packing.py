"""Packing examples into fixed-length rows: the Batch the model and the loss consume.

An example occupies ``input + [sep] + target + [eod]`` in its row. The model reads the input and
the separator bidirectionally (``prefix_mask``); the loss covers the positions that predict the
target and the end-of-document token, so generation learns where to stop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from birdie_ssm.data.tokenizer import SpecialTokens
from birdie_ssm.objectives.base import Example

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

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def num_target_tokens(self) -> int:
        return int(self.loss_mask.sum())


class RowBuilder:
    """Fills one row of ``length`` tokens with examples, left to right."""

    def __init__(self, length: int, specials: SpecialTokens) -> None:
        self.length, self.specials = length, specials
        self.tokens = np.full(length, specials.pad, np.int32)
        self.targets = np.full(length, specials.pad, np.int32)
        self.loss = np.zeros(length, bool)
        self.segments = np.zeros(length, np.int32)
        self.positions = np.zeros(length, np.int32)
        self.prefix = np.zeros(length, bool)
        self.arms = np.full(length, -1, np.int32)
        self.used = 0
        self.count = 0

    def budget(self) -> int:
        """Tokens an objective may still use in this row (input + target)."""
        return self.length - self.used - OVERHEAD

    def add(self, example: Example, arm: int) -> None:
        """Append ``example`` (which must fit ``budget()``) as the next segment."""
        seq = np.concatenate(
            [example.input_ids, [self.specials.sep], example.target_ids, [self.specials.eod]]
        ).astype(np.int32)
        m, p = len(seq), len(example.input_ids) + 1
        if m > self.length - self.used:
            raise ValueError(f"example of {m} tokens does not fit in {self.length - self.used}")
        s = slice(self.used, self.used + m)
        self.count += 1
        self.tokens[s] = seq
        self.targets[s] = np.concatenate([seq[1:], [self.specials.pad]])
        j = np.arange(m)
        self.loss[s] = (j >= p - 1) & (j < m - 1)
        self.segments[s] = self.count
        self.positions[s] = j
        self.prefix[s] = j < p
        self.arms[s] = arm
        self.used += m


def stack_rows(rows: list[RowBuilder]) -> Batch:
    """A Batch from filled rows."""
    return Batch(
        input_ids=np.stack([r.tokens for r in rows]),
        target_ids=np.stack([r.targets for r in rows]),
        loss_mask=np.stack([r.loss for r in rows]),
        segment_ids=np.stack([r.segments for r in rows]),
        positions=np.stack([r.positions for r in rows]),
        prefix_mask=np.stack([r.prefix for r in rows]),
        arm_ids=np.stack([r.arms for r in rows]),
    )
