"""Infilling: reconstruct a masked span of held-out text (the run's own validation documents).

Each item is a ``passage``-token stretch of a validation document with one span of the swept
length masked, starting in the passage's middle half. Native form (a run that trained the
infilling objective): the input has sentinel 0 where the span was and the target is sentinel 0
followed by the span, exactly as infilling examples were built. Text form: the passage up to the
span; the answer is the span, so a causal model has only the left context to go on. Scored per
token (the leading sentinel of the native form is not scored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.data.corpus import make_source
from birdie_ssm.data.tokenizer import SpecialTokens, Tokenizer
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.results import TaskResult
from birdie_ssm.evaluation.runner import (
    EvalContext,
    Item,
    TaskSettings,
    evaluate_items,
    sweep_rngs,
    token_scores,
)

MAX_DOCUMENTS_PER_PASSAGE = 1000


@dataclass
class InfillingSettings(TaskSettings):
    """``spans``: masked span lengths (the sweep); ``passage``: tokens of text per item."""

    spans: list[int] = field(default_factory=lambda: [3, 8, 32])
    passage: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.spans or not all(1 <= s <= self.passage // 2 for s in self.spans):
            raise ValueError(f"spans must be integers in [1, passage/2 = {self.passage // 2}]")


def _passage(
    document: Callable[[int], str], tokenizer: Tokenizer, index: int, n: int
) -> np.ndarray:
    """The first ``n`` tokens of validation document ``index`` (and the ones after it if short)."""
    parts, total = [], 0
    for k in range(index, index + MAX_DOCUMENTS_PER_PASSAGE):
        ids = tokenizer.encode(document(k))
        parts.append(ids)
        total += len(ids)
        if total >= n:
            return np.concatenate(parts)[:n].astype(np.int32)
    raise BirdieError(f"the validation documents hold fewer than {n} tokens for an infilling item")


def infilling_item(
    text: np.ndarray, span: int, rng: np.random.Generator, specials: SpecialTokens
) -> Item:
    """``text`` (a passage of token ids) with one ``span``-token hole in its middle half."""
    sentinel = np.array([specials.sentinel(0)], np.int32)
    n = len(text)
    start = int(rng.integers(n // 4, max(n // 4, n - n // 4 - span) + 1))
    left, hole, right = text[:start], text[start : start + span], text[start + span :]
    return Item(
        context=left,
        answer=hole,
        point=span,
        native_input=np.concatenate([left, sentinel, right]),
        native_answer=np.concatenate([sentinel, hole]),
    )


def infilling_items(
    settings: InfillingSettings, tokenizer: Tokenizer, document: Callable[[int], str]
) -> list[Item]:
    """``samples`` masked passages per span length; item i of every length uses the same passage."""
    passages = [
        _passage(document, tokenizer, settings.seed * settings.samples + i, settings.passage)
        for i in range(settings.samples)
    ]
    return [
        infilling_item(passages[i], span, rng, tokenizer.specials)
        for span, i, rng in sweep_rngs(settings, settings.spans)
    ]


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


def evaluate_infilling(ctx: EvalContext, settings: InfillingSettings) -> TaskResult:
    """Span reconstruction swept over span lengths."""
    source = make_source(ctx.config.data)
    items = infilling_items(settings, ctx.tokenizer, source.val)
    return evaluate_items(
        ctx, "infilling", settings, items, score_infilling,
        sweep="span", metric="token_acc", chance=constant_guess_accuracy(items),
        native="infilling",
    )  # fmt: skip
