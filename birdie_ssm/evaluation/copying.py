"""Copying (with length generalisation) and selective copying (Mamba's formulation).

- ``copying``: a random lowercase string of each swept length. Native form (a run that trained
  the copying objective): input = the string, target = the string. Text form: the string, a
  newline and its first ``prime`` characters; the answer is the rest. Lengths beyond what a
  training row could hold are flagged ``beyond_train``.
- ``selective-copying``: a context of ``.`` noise with ``tokens`` letters from a 16-letter
  vocabulary at random positions, then a newline; the answer is the letters in order.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.config import Config
from birdie_ssm.data.tokenizer import Tokenizer
from birdie_ssm.evaluation.results import TaskResult
from birdie_ssm.evaluation.runner import (
    EvalContext,
    Item,
    TaskSettings,
    evaluate_items,
    sweep_rngs,
    token_scores,
)
from birdie_ssm.objectives.arms import as_values
from birdie_ssm.objectives.copying import CopyingConfig
from birdie_ssm.objectives.packing import OVERHEAD
from birdie_ssm.objectives.spans import parse_band

LETTERS = np.array(list(string.ascii_lowercase))
SELECTIVE_VOCAB = LETTERS[:16]
NOISE = "."


@dataclass
class CopyingSettings(TaskSettings):
    """``lengths``: string lengths (the sweep); ``prime``: characters given in the text form."""

    lengths: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    prime: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.prime <= 64:
            raise ValueError("prime must lie in [0, 64]")
        if not self.lengths or not all(self.prime < n <= 65536 for n in self.lengths):
            raise ValueError(f"lengths must be integers in ({self.prime}, 65536]")


@dataclass
class SelectiveCopyingSettings(TaskSettings):
    """``lengths``: context lengths (the sweep); ``tokens``: letters to pick out of the noise."""

    lengths: list[int] = field(default_factory=lambda: [64, 128, 256])
    tokens: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.tokens <= 1024:
            raise ValueError("tokens must lie in [1, 1024]")
        if not self.lengths or not all(self.tokens <= n <= 65536 for n in self.lengths):
            raise ValueError(f"lengths must be integers in [tokens={self.tokens}, 65536]")


def copying_item(
    settings: CopyingSettings, tokenizer: Tokenizer, length: int, rng: np.random.Generator
) -> Item:
    """One random lowercase string of ``length`` characters, in both forms."""
    text = "".join(LETTERS[rng.integers(len(LETTERS), size=length)])
    whole = tokenizer.encode(text)
    context = tokenizer.encode(f"{text}\n{text[: settings.prime]}")
    answer = tokenizer.encode(text[settings.prime :])
    return Item(context, answer, length, native_input=whole, native_answer=whole)


def copying_items(settings: CopyingSettings, tokenizer: Tokenizer) -> list[Item]:
    """``samples`` random strings per length, each a pure function of (seed, length, index)."""
    return [
        copying_item(settings, tokenizer, length, rng)
        for length, _, rng in sweep_rngs(settings, settings.lengths)
    ]


def score_copy(
    items: Sequence[Item], predictions: Sequence[np.ndarray], tokenizer: Tokenizer, native: bool
) -> list[dict[str, float]]:
    """Per-token accuracy and exact match against the answer of the form used."""
    return token_scores(items, predictions, native)


def longest_trained_copy(config: Config) -> int:
    """The longest string a training row of the run could have copied."""
    longest = (config.data.seq_len - OVERHEAD - 1) // 2  # input + paradigm + target
    bands = [
        parse_band("length", value, 1, 1 << 20)
        for entry in config.objectives.mixture
        if entry.name == "copying"
        for value in as_values(entry.params.get("length", CopyingConfig().length))
    ]
    if bands and all(band is not None for band in bands):
        return min(longest, max(band[1] for band in bands))
    return longest


def evaluate_copying(ctx: EvalContext, settings: CopyingSettings) -> TaskResult:
    """Copying swept over lengths, flagging those longer than the run ever trained on."""
    items = copying_items(settings, ctx.tokenizer)
    longest = longest_trained_copy(ctx.config)
    result = evaluate_items(
        ctx, "copying", settings, items, score_copy,
        sweep="length", metric="token_acc", chance=1 / len(LETTERS), native="copying",
        notes=[f"beyond_train: longer than the {longest} tokens a training row could copy"],
    )  # fmt: skip
    for point in result.points:
        point["beyond_train"] = point["length"] > longest
    return result


def selective_copying_item(
    settings: SelectiveCopyingSettings, tokenizer: Tokenizer, length: int, rng: np.random.Generator
) -> Item:
    """One ``length``-character noisy context hiding ``settings.tokens`` letters."""
    where = np.sort(rng.choice(length, size=settings.tokens, replace=False))
    letters = SELECTIVE_VOCAB[rng.integers(len(SELECTIVE_VOCAB), size=settings.tokens)]
    context = np.full(length, NOISE)
    context[where] = letters
    return Item(
        tokenizer.encode("".join(context) + "\n"), tokenizer.encode("".join(letters)), length
    )


def selective_copying_items(settings: SelectiveCopyingSettings, tokenizer: Tokenizer) -> list[Item]:
    """``samples`` noisy contexts per length, each a pure function of (seed, length, index)."""
    return [
        selective_copying_item(settings, tokenizer, length, rng)
        for length, _, rng in sweep_rngs(settings, settings.lengths)
    ]


def evaluate_selective_copying(ctx: EvalContext, settings: SelectiveCopyingSettings) -> TaskResult:
    """Selective copying swept over context lengths."""
    items = selective_copying_items(settings, ctx.tokenizer)
    return evaluate_items(
        ctx, "selective-copying", settings, items, score_copy,
        sweep="length", metric="token_acc", chance=1 / len(SELECTIVE_VOCAB),
    )  # fmt: skip
