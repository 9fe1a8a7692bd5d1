"""MQAR (Zoology's multi-query associative recall), mapped onto text for a byte tokenizer.

Zoology draws keys from one half of a vocabulary and values from the other and writes each pair
as two tokens. Here a key is ``key_length`` lowercase letters and a value ``value_length``
digits (disjoint alphabets, as in Zoology), written ``key:value`` and separated by spaces. After
the pairs comes a newline, then the query ``key:``; the answer is its value (exact match). One
key is asked per prompt, drawn uniformly over the pairs (Zoology asks every key at power-law
gaps in one sequence; asking one per prompt keeps decoding batched). The sweep is Zoology's grid
of pair counts (4, 8, 16, 64); a pair costs ``key_length + value_length + 2`` tokens.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.data.tokenizer import Tokenizer
from birdie_ssm.evaluation.results import TaskResult
from birdie_ssm.evaluation.runner import (
    EvalContext,
    Item,
    TaskSettings,
    check_sweep,
    evaluate_items,
    sweep_rngs,
    text_guess,
)

LETTERS = np.array(list(string.ascii_lowercase))
DIGITS = np.array(list(string.digits))


@dataclass
class MqarSettings(TaskSettings):
    """``pairs``: key-value pairs per prompt (the sweep); key and value lengths in characters."""

    pairs: list[int] = field(default_factory=lambda: [4, 8, 16, 64])
    key_length: int = 3
    value_length: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.key_length <= 16 or not 1 <= self.value_length <= 16:
            raise ValueError("key_length and value_length must lie in [1, 16]")
        check_sweep("pairs", self.pairs, 1, min(len(LETTERS) ** self.key_length, 4096))


def _strings(alphabet: np.ndarray, codes: np.ndarray, length: int) -> list[str]:
    """Base-``len(alphabet)`` spelling of each code in ``length`` characters."""
    places = len(alphabet) ** np.arange(length - 1, -1, -1)
    return ["".join(alphabet[(c // places) % len(alphabet)]) for c in codes]


def mqar_item(
    settings: MqarSettings, tokenizer: Tokenizer, pairs: int, rng: np.random.Generator
) -> Item:
    """One prompt of ``pairs`` key-value pairs and one key asked."""
    key_codes = rng.choice(len(LETTERS) ** settings.key_length, size=pairs, replace=False)
    keys = _strings(LETTERS, key_codes, settings.key_length)
    value_codes = rng.integers(0, len(DIGITS) ** settings.value_length, size=pairs)
    values = _strings(DIGITS, value_codes, settings.value_length)
    asked = int(rng.integers(pairs))
    table = " ".join(f"{k}:{v}" for k, v in zip(keys, values, strict=True))
    context = f"{table}\n{keys[asked]}:"
    return Item(tokenizer.encode(context), tokenizer.encode(values[asked]), pairs)


def mqar_items(settings: MqarSettings, tokenizer: Tokenizer) -> list[Item]:
    """``samples`` prompts per pair count, each a pure function of (seed, pairs, index)."""
    return [
        mqar_item(settings, tokenizer, pairs, rng)
        for pairs, _, rng in sweep_rngs(settings, settings.pairs)
    ]


def score_mqar(
    items: Sequence[Item], predictions: Sequence[np.ndarray], tokenizer: Tokenizer, native: bool
) -> list[dict[str, float]]:
    """1 when the generated value (leading spaces ignored) is the stored one."""
    guesses = (text_guess(tokenizer, *pair) for pair in zip(items, predictions, strict=True))
    return [{"accuracy": float(guess == answer)} for guess, answer in guesses]


def evaluate_mqar(ctx: EvalContext, settings: MqarSettings) -> TaskResult:
    """Associative recall swept over the number of stored pairs."""
    items = mqar_items(settings, ctx.tokenizer)
    return evaluate_items(
        ctx, "mqar", settings, items, score_mqar,
        sweep="pairs", metric="accuracy", chance=10.0 ** -settings.value_length,
    )  # fmt: skip
