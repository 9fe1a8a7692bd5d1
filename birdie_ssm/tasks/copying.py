"""Copying (with length generalisation) and selective copying (Mamba's formulation).

- ``copying``: a random lowercase string of each swept length. Native form (a run that trained
  the copying objective, laid out by ``copy_layout``): input = the string, target = the string.
  Text form: the string, a newline and its first ``prime`` characters; the answer is the rest.
  (The evaluation flags lengths beyond what the run trained: evaluation/runner.py.)
- ``selective-copying``: a context of ``.`` noise with ``tokens`` letters from a 16-letter
  vocabulary at random positions, then a newline; the answer is the letters in order.

  Native form (a run that trained the ``selective_copying`` objective, laid out by
  ``selective_copying_layout``): a different question about the same skill. Birdie's objective
  has no noise to filter: it finds spans of a context by their start and end delimiters. So the
  native item draws its own context of ``length`` random lowercase letters and asks for one span
  of ``tokens`` letters, named by the ``NATIVE_DELIMITER`` letters before it and after it (the
  start delimiter's first occurrence in the context opens the span, the end delimiter's first
  occurrence after that closes it, as the objective reads them), context before the query. It
  measures finding a span by its delimiters and copying it out; the text form measures picking
  letters out of noise. Both are scored per token against their own answer.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.tasks.base import Item, Task, TaskSettings, register_task, token_scores
from birdie_ssm.text.tokenizer import SpecialTokens, Tokenizer

LETTERS = np.array(list(string.ascii_lowercase))
SELECTIVE_VOCAB = LETTERS[:16]
NOISE = "."
# The same alphabets as ASCII bytes: strings are laid out as byte arrays, not joined per letter.
_LETTER_BYTES = np.frombuffer(string.ascii_lowercase.encode(), dtype=np.uint8)
_SELECTIVE_BYTES = _LETTER_BYTES[: len(SELECTIVE_VOCAB)]
# Sentinels 0..2 of the selective-copying layout: the query's start delimiter, its end
# delimiter, and the target's gaps between spans.
START, END, GAP = 0, 1, 2
NATIVE_DELIMITER = 3  # letters of each delimiter in selective copying's native form
NATIVE_TRIES = 64  # span positions drawn before an item goes without a native form


def copy_layout(passage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of copying: read the passage, then generate it again verbatim."""
    return passage, passage


def selective_copying_layout(
    context: np.ndarray,
    found: Sequence[tuple[int, int, int]],
    delimiter: int,
    specials: SpecialTokens,
    position: str = "before",
) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of selective copying for spans ``found`` of ``context``, each
    ``(start-delimiter position, span start, span end)`` with ``delimiter``-token delimiters.

    The query lists, per span, ``<start> delimiter <end> delimiter``; the input is the context
    then the query (``position`` "before") or the query then the context ("after"). The target
    is the spans separated by the gap sentinel, then the done token."""
    markers = np.arange(specials.sentinel_base, specials.sentinel_base + 3, dtype=np.int32)
    start_marker, end_marker, gap = (
        markers[START : START + 1],
        markers[END : END + 1],
        markers[GAP:],
    )
    query, target = [], []
    for p, s, e in found:  # at most a handful of spans: slices, no per-token work
        query += [start_marker, context[p:s], end_marker, context[e : e + delimiter]]
        target += [context[s:e], gap]
    target[-1] = np.array([specials.done], dtype=np.int32)
    parts = [context, *query] if position == "before" else [*query, context]
    return np.concatenate(parts), np.concatenate(target)


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


def _letters(alphabet: np.ndarray, rng: np.random.Generator, length: int) -> str:
    """``length`` letters drawn uniformly from ``alphabet`` (ASCII bytes)."""
    return alphabet[rng.integers(len(alphabet), size=length)].tobytes().decode("ascii")


def copying_native_form(
    settings: CopyingSettings, tokenizer: Tokenizer, length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``copying_item(...).form(native=True)`` alone (what ``task_format`` trains on)."""
    return copy_layout(tokenizer.encode(_letters(_LETTER_BYTES, rng, length)))


def copying_item(
    settings: CopyingSettings, tokenizer: Tokenizer, length: int, rng: np.random.Generator
) -> Item:
    """One random lowercase string of ``length`` characters, in both forms."""
    text = _letters(_LETTER_BYTES, rng, length)
    native_input, native_answer = copy_layout(tokenizer.encode(text))
    context = tokenizer.encode(f"{text}\n{text[: settings.prime]}")
    answer = tokenizer.encode(text[settings.prime :])
    return Item(context, answer, length, native_input=native_input, native_answer=native_answer)


def score_copy(
    items: Sequence[Item], predictions: Sequence[np.ndarray], tokenizer: Tokenizer, native: bool
) -> list[dict[str, float]]:
    """Per-token accuracy and exact match against the answer of the form used."""
    return token_scores(items, predictions, native)


def _first(windows: np.ndarray, window: np.ndarray, start: int) -> int:
    """The first position >= ``start`` where ``window`` occurs (-1: nowhere)."""
    hits = np.flatnonzero((windows[start:] == window).all(axis=1))
    return start + int(hits[0]) if len(hits) else -1


def native_span(
    context: np.ndarray, span: int, rng: np.random.Generator, delimiter: int = NATIVE_DELIMITER
) -> tuple[int, int, int] | None:
    """``(start-delimiter position, span start, span end)`` of one ``span``-token span of
    ``context`` that reads back exactly (see the module docstring), or None when none of
    ``NATIVE_TRIES`` draws does (or the context is too short)."""
    last = len(context) - 2 * delimiter - span
    if last < 0:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(context, delimiter)
    for _ in range(NATIVE_TRIES):
        p = _first(windows, windows[int(rng.integers(last + 1))], 0)  # what a reader finds
        s, e = p + delimiter, p + delimiter + span
        if e + delimiter <= len(context) and _first(windows, windows[e], s) == e:
            return p, s, e
    return None


def _selective_text(
    settings: SelectiveCopyingSettings, tokenizer: Tokenizer, length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(text-form context, answer, hidden positions, hidden letters as bytes)."""
    where = np.sort(rng.choice(length, size=settings.tokens, replace=False))
    letters = _SELECTIVE_BYTES[rng.integers(len(_SELECTIVE_BYTES), size=settings.tokens)]
    context = np.full(length + 1, ord(NOISE), dtype=np.uint8)
    context[where], context[-1] = letters, ord("\n")
    text = tokenizer.encode(context.tobytes().decode("ascii"))
    return text, tokenizer.encode(letters.tobytes().decode("ascii")), where, letters


def selective_copying_text_form(
    settings: SelectiveCopyingSettings, tokenizer: Tokenizer, length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``selective_copying_item(...).form(native=False)`` alone (what ``task_format`` trains
    on; the native form's own context and span search are skipped)."""
    return _selective_text(settings, tokenizer, length, rng)[:2]


def selective_copying_item(
    settings: SelectiveCopyingSettings, tokenizer: Tokenizer, length: int, rng: np.random.Generator
) -> Item:
    """One ``length``-character noisy context hiding ``settings.tokens`` letters, and the native
    form's own letter context."""
    text, answer, where, letters = _selective_text(settings, tokenizer, length, rng)
    # The native form draws from its own rng, seeded by the text form's draws: ``rng`` is left
    # where the text form left it (a task_format example's later draws stay as they were).
    own = np.random.default_rng([length, *where.tolist(), *letters.tolist()])
    native = tokenizer.encode(_letters(_LETTER_BYTES, own, length))
    found = native_span(native, settings.tokens, own)
    if found is None:
        return Item(text, answer, length)
    native_input, native_answer = selective_copying_layout(
        native, [found], NATIVE_DELIMITER, tokenizer.specials
    )
    return Item(text, answer, length, native_input=native_input, native_answer=native_answer)


# Chance levels are module-level functions, not lambdas: a task_format arm holds its Task, and
# data worker processes receive the arms pickled.
def copying_chance(settings: CopyingSettings, items: Sequence[Item]) -> float:
    """A guessed letter is right one time in 26."""
    return 1 / len(LETTERS)


def selective_copying_chance(settings: SelectiveCopyingSettings, items: Sequence[Item]) -> float:
    """A guessed letter is right one time in the selective vocabulary's size."""
    return 1 / len(SELECTIVE_VOCAB)


COPYING = register_task(
    Task(
        name="copying",
        settings=CopyingSettings,
        sweep="lengths",
        label="length",
        item=copying_item,
        tuned_form=copying_native_form,
        score=score_copy,
        metric="token_acc",
        meaning=(
            "fraction of a random letter string's tokens the model copies back in place "
            "(chance 1/26)"
        ),
        chance=copying_chance,
        native=("copying",),
        tune_native=True,
    )
)

SELECTIVE_COPYING = register_task(
    Task(
        name="selective-copying",
        settings=SelectiveCopyingSettings,
        sweep="lengths",
        label="length",
        item=selective_copying_item,
        tuned_form=selective_copying_text_form,
        score=score_copy,
        metric="token_acc",
        meaning=(
            "fraction of the hidden tokens the model copies out of a noisy context, in place "
            "(chance: one in the alphabet)"
        ),
        chance=selective_copying_chance,
        native=("selective_copying",),
    )
)
