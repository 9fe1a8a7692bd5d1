"""Phone-book retrieval: single lookup (Jelassi et al. 2024) and multi-number lookup (Birdie).

Entries are ``First Last: NNNNNNNNNN`` (names from the synthetic corpus's name lists, the first
digit 6-9 and the rest uniform), one per line.

- ``phonebook``: the book, two demonstration entries from it, then ``Name: `` of a third entry;
  the answer is its number (exact match; per-digit accuracy alongside), swept over book sizes.
- ``multi-phonebook`` (Birdie's layout): the question ``What are the phone numbers for a, b?``
  before and after the book; the answer is the numbers, comma-separated, in the order asked.
  The i-th answer is scored against the i-th name asked (a missing or malformed answer, or one
  that names anyone else, is wrong); per-number and per-digit accuracy, swept over how many
  names are asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.tasks.base import (
    Item,
    Task,
    TaskSettings,
    char_accuracy,
    check_sweep,
    register_task,
    text_guess,
    text_of,
)
from birdie_ssm.text.synthetic import FIRST, LAST
from birdie_ssm.text.tokenizer import Tokenizer

MAX_BOOK = len(FIRST) * len(LAST)


@dataclass
class PhonebookSettings(TaskSettings):
    """``book_sizes``: entries per book (the sweep); ``digits`` per number."""

    book_sizes: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    digits: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sweep("book_sizes", self.book_sizes, 3, MAX_BOOK)
        check_sweep("digits", [self.digits], 1, 32)


@dataclass
class MultiPhonebookSettings(TaskSettings):
    """``queries``: how many names are asked at once (the sweep); ``book_size`` entries."""

    queries: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    book_size: int = 16
    digits: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sweep("book_size", [self.book_size], 1, MAX_BOOK)
        check_sweep("queries", self.queries, 1, self.book_size)
        check_sweep("digits", [self.digits], 1, 32)


def make_book(rng: np.random.Generator, size: int, digits: int) -> list[tuple[str, str]]:
    """``size`` entries with distinct names: (name, number)."""
    picks = rng.choice(MAX_BOOK, size=size, replace=False)
    first = rng.integers(6, 10, size=size)
    rest = rng.integers(0, 10, size=(size, digits - 1))
    return [
        (f"{FIRST[p // len(LAST)]} {LAST[p % len(LAST)]}", str(f) + "".join(map(str, r)))
        for p, f, r in zip(picks, first, rest, strict=True)
    ]


def _lines(entries: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"{name}: {number}" for name, number in entries)


def phonebook_item(
    settings: PhonebookSettings, tokenizer: Tokenizer, size: int, rng: np.random.Generator
) -> Item:
    """One lookup in a book of ``size`` entries drawn from ``rng``."""
    book = make_book(rng, size, settings.digits)
    a, b, c = rng.choice(size, size=3, replace=False)
    context = f"{_lines(book)}\n{_lines([book[a], book[b]])}\n{book[c][0]}: "
    return Item(tokenizer.encode(context), tokenizer.encode(book[c][1]), point=size)


def score_phonebook(
    items: Sequence[Item], predictions: Sequence[np.ndarray], tokenizer: Tokenizer, native: bool
) -> list[dict[str, float]]:
    """Exact match and per-digit accuracy of each predicted number (leading spaces ignored)."""
    guesses = (text_guess(tokenizer, *pair) for pair in zip(items, predictions, strict=True))
    return [
        {"exact": float(guess == answer), "digit_acc": char_accuracy(guess, answer)}
        for guess, answer in guesses
    ]


def multi_phonebook_question(names: Sequence[str]) -> str:
    """The question Birdie asks before (and, pointing back, after) the book."""
    return f"What are the phone numbers for {', '.join(names)}?"


def multi_phonebook_item(
    settings: MultiPhonebookSettings, tokenizer: Tokenizer, count: int, rng: np.random.Generator
) -> Item:
    """One book with ``count`` names asked before and after it; the answer is their numbers,
    comma-separated, in the order asked."""
    book = make_book(rng, settings.book_size, settings.digits)
    asked = [book[j] for j in rng.choice(settings.book_size, size=count, replace=False)]
    question = multi_phonebook_question([name for name, _ in asked])
    context = (
        f"{question} Find them in the phonebook below.\nPhonebook:\n{_lines(book)}\n"
        f"{question} Find them in the phonebook above.\nAnswer: "
    )
    answer = ", ".join(number for _, number in asked)
    return Item(tokenizer.encode(context), tokenizer.encode(answer), count)


def asked_names(context: str) -> list[str]:
    """The names a multi-phonebook context asks for, in order (from its closing question)."""
    match = _QUESTION.findall(context)
    return match[-1].split(", ") if match else []


_QUESTION = re.compile(r"What are the phone numbers for ([^?\n]*)\?")
# One answer: a number, optionally preceded by the name it answers (``Name: number``).
_ANSWER = re.compile(r"(?:(?P<name>[^:,\n]+?) *: *)?(?P<number>[0-9]+)")


def parse_answers(text: str, names: Sequence[str]) -> list[str]:
    """The number given for each of ``names``, by position: the i-th comma-separated answer
    answers the i-th name. An answer that is missing, is not a number, or names anyone but
    the i-th name asked gives ``""`` (wrong)."""
    parts = text.split(",")
    numbers = []
    for i, name in enumerate(names):
        m = _ANSWER.fullmatch(parts[i].strip()) if i < len(parts) else None
        ok = m is not None and (m["name"] is None or m["name"].strip() == name)
        numbers.append(m["number"] if ok else "")
    return numbers


def score_multi_phonebook(
    items: Sequence[Item], predictions: Sequence[np.ndarray], tokenizer: Tokenizer, native: bool
) -> list[dict[str, float]]:
    """Per-number exact match and per-digit accuracy, the i-th answer against the i-th name."""
    scores = []
    for item, predicted in zip(items, predictions, strict=True):
        expected = tokenizer.decode(item.answer).split(", ")
        names = asked_names(tokenizer.decode(item.context))
        if len(names) != len(expected):
            raise ValueError("a multi-phonebook item's question and answer disagree")
        given = parse_answers(text_of(tokenizer, predicted), names)
        pairs = list(zip(given, expected, strict=True))
        scores.append(
            {
                "number_acc": float(np.mean([g == n for g, n in pairs])),
                "digit_acc": float(np.mean([char_accuracy(g, n) for g, n in pairs])),
            }
        )
    return scores


PHONEBOOK = register_task(
    Task(
        name="phonebook",
        settings=PhonebookSettings,
        sweep="book_sizes",
        label="book_size",
        item=phonebook_item,
        score=score_phonebook,
        metric="exact",
        chance=lambda settings, items: 0.25 * 10.0 ** -(settings.digits - 1),
    )
)

MULTI_PHONEBOOK = register_task(
    Task(
        name="multi-phonebook",
        settings=MultiPhonebookSettings,
        sweep="queries",
        label="queries",
        item=multi_phonebook_item,
        score=score_multi_phonebook,
        metric="digit_acc",
        chance=lambda settings, items: 0.1,
    )
)
