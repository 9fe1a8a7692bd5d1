"""Infilling: reconstruct a masked span of held-out text (the run's own validation documents).

Each item is a ``passage``-token stretch of a validation document with one span of the swept
length masked, starting in the passage's middle half. Native form (a run that trained the
infilling objective): the input has sentinel 0 where the span was and the target is sentinel 0
followed by the span, laid out by ``sentinel_layout`` exactly as infilling examples are. Text
form: the passage up to the span; the answer is the span, so a causal model has only the left
context to go on. Scored per token (the leading sentinel of the native form is not scored).

Items are cut from documents: ``Task.items`` is handed the documents (the evaluation passes
distinct passages of the run's held-out ones, several from a long document, never one twice in
a result: ``held_out_passages`` in ``birdie_ssm.text.corpus``), ``task_format`` a training
document's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.tasks.base import Item, Task, TaskSettings, register_task, token_scores
from birdie_ssm.text.tokenizer import SpecialTokens, Tokenizer


def sentinel_layout(
    passage: np.ndarray, lengths: np.ndarray, sentinels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) for runs ``[clean_0, noise_0, ..., noise_{k-1}, clean_k]`` (the outer
    clean runs may be empty): each noise run becomes its sentinel in the input; the target is
    each sentinel followed by the run it replaced."""
    mask = np.repeat(np.arange(len(lengths)) % 2 == 1, lengths)
    starts = (np.cumsum(lengths) - lengths)[1::2]
    inputs = passage.copy()
    inputs[starts] = sentinels  # the first token of each noise run turns into its sentinel
    keep = ~mask
    keep[starts] = True
    inputs = inputs[keep]
    noise_before = np.cumsum(lengths[1::2]) - lengths[1::2]
    targets = np.insert(passage[mask], noise_before, sentinels)
    return inputs, targets


@dataclass
class InfillingSettings(TaskSettings):
    """``spans``: masked span lengths (the sweep); ``passage``: tokens of text per item."""

    spans: list[int] = field(default_factory=lambda: [3, 8, 32])
    passage: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.spans or not all(1 <= s <= self.passage // 2 for s in self.spans):
            raise ValueError(f"spans must be integers in [1, passage/2 = {self.passage // 2}]")


def infilling_item(
    text: np.ndarray, span: int, rng: np.random.Generator, specials: SpecialTokens
) -> Item:
    """``text`` (a passage of token ids) with one ``span``-token hole in its middle half."""
    text = np.asarray(text, np.int32)
    n = len(text)
    start = int(rng.integers(n // 4, max(n // 4, n - n // 4 - span) + 1))
    lengths = np.array([start, span, n - start - span])
    sentinels = np.array([specials.sentinel(0)], np.int32)
    native_input, native_answer = sentinel_layout(text, lengths, sentinels)
    return Item(
        context=text[:start],
        answer=text[start : start + span],
        point=span,
        native_input=native_input,
        native_answer=native_answer,
    )


def document_item(
    settings: InfillingSettings,
    passage: np.ndarray,
    span: int,
    rng: np.random.Generator,
    specials: SpecialTokens,
) -> Item:
    """The item of ``passage`` (``settings.passage`` tokens of a document) masking ``span``."""
    return infilling_item(passage, span, rng, specials)


def score_infilling(
    items: Sequence[Item], predictions: Sequence[np.ndarray], tokenizer: Tokenizer, native: bool
) -> list[dict[str, float]]:
    """Per-token accuracy and exact match of the reconstructed span."""
    # The native target opens with the span's sentinel, which is not scored.
    return token_scores(items, predictions, native, skip=1 if native else 0)


def constant_guess_accuracy(items: Sequence[Item]) -> float:
    """Accuracy of always guessing the most frequent span token (chance for text)."""
    tokens = np.concatenate([item.answer for item in items])
    return float(np.bincount(tokens).max() / len(tokens))


def passage_length(settings: InfillingSettings) -> int:
    """Tokens of document text one item takes (a named function: arms are pickled to workers)."""
    return settings.passage


def infilling_chance(settings: InfillingSettings, items: Sequence[Item]) -> float:
    """Chance: always guessing the most frequent span token."""
    return constant_guess_accuracy(items)


INFILLING = register_task(
    Task(
        name="infilling",
        settings=InfillingSettings,
        sweep="spans",
        label="span",
        document_item=document_item,
        passage=passage_length,
        score=score_infilling,
        metric="token_acc",
        meaning=(
            "fraction of a masked span's tokens of held-out text the model restores in place "
            "(chance: the most common token)"
        ),
        chance=infilling_chance,
        native=("infilling",),
        tune_native=True,
    )
)
