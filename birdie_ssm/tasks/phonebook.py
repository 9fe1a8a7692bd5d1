"""Phone-book retrieval: single lookup (Jelassi et al. 2024) and multi-number lookup (Birdie).

Entries are ``First Last: NNNNNNNNNN`` (names from the synthetic corpus's name lists, the first
digit 6-9 and the rest uniform), one per line. Both tasks take ``names`` (a list of names, or
``names_file``: one name per line) and ``number_format`` (e.g. ``"###-####"`` or
``"555-01##"``: ``#`` a uniform digit, digits and ``-.()+`` kept as written) to vary the book;
the defaults give the layout above, item for item.

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
from pathlib import Path

import numpy as np

from birdie_ssm.errors import not_a_file
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
SYNTHETIC_NAMES = [f"{first} {last}" for first in FIRST for last in LAST]  # index p: p // len(LAST)


NUMBER_CHARS = set("0123456789#-.()+")
NAME_FORBIDDEN = set(":,?\n")


@dataclass
class BookSettings(TaskSettings):
    """What a book looks like. ``digits``: digits per number in the default layout (the first
    6-9); ``number_format``: a layout instead, ``#`` a uniform digit and digits and ``-.()+``
    kept as written (``"###-####"``, ``"555-01##"``); ``names``: the names a book draws from
    (default: every First Last of the synthetic corpus), or ``names_file``: one name per line."""

    digits: int = 10
    number_format: str | None = None
    names: list[str] | None = None
    names_file: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sweep("digits", [self.digits], 1, 32)
        if self.number_format is not None:
            bad = sorted(set(self.number_format) - NUMBER_CHARS)
            if bad or "#" not in self.number_format or len(self.number_format) > 64:
                raise ValueError(
                    f"number_format must hold at least one '#' (a digit) and only digits, "
                    f"'#' and '-.()+' (at most 64 characters), got {self.number_format!r}"
                )
        if self.names is not None and self.names_file is not None:
            raise ValueError("give names or names_file, not both")
        if self.names_file is not None:
            path = Path(self.names_file)
            if not path.is_file():
                raise ValueError(f"names_file '{path}' {not_a_file(path)}")
            names = [n.strip() for n in path.read_text(encoding="utf-8").splitlines()]
            object.__setattr__(self, "_names", [n for n in names if n])
        else:
            object.__setattr__(self, "_names", self.names)
        if self._names is not None:
            self._check_names(self._names)

    @staticmethod
    def _check_names(names: list[str]) -> None:
        where = "names"
        for name in names:
            if not name.strip() or name != name.strip() or NAME_FORBIDDEN & set(name):
                raise ValueError(
                    f"{where}: every name must be non-empty text without surrounding spaces, "
                    f"':', ',', '?' or line breaks, got {name!r}"
                )
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"names must be distinct, '{dup}' appears twice")

    def book_names(self) -> list[str] | None:
        """The names a book draws from (None: the synthetic corpus's First Last pairs)."""
        return self._names

    def max_book(self) -> int:
        """The largest book these names allow."""
        return MAX_BOOK if self._names is None else len(self._names)

    def number_chance(self) -> float:
        """The chance of guessing a number whole (1/4 for the default's first digit)."""
        if self.number_format is None:
            return 0.25 * 10.0 ** -(self.digits - 1)
        return 10.0 ** -self.number_format.count("#")

    def character_chance(self) -> float:
        """The mean per-character accuracy of the best guess that knows the layout but not the
        book: 1/4 for the default's first digit (6-9), 1/10 for a uniform digit, 1 for a
        character the layout fixes (0.115 for the default 10 digits)."""
        if self.number_format is None:
            return (0.25 + 0.1 * (self.digits - 1)) / self.digits
        uniform = self.number_format.count("#")
        return (len(self.number_format) - uniform + 0.1 * uniform) / len(self.number_format)


@dataclass
class PhonebookSettings(BookSettings):
    """``book_sizes``: entries per book (the sweep); the book's layout as in BookSettings."""

    book_sizes: list[int] = field(default_factory=lambda: [4, 8, 16, 32])

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sweep("book_sizes", self.book_sizes, 3, self.max_book())


@dataclass
class MultiPhonebookSettings(BookSettings):
    """``queries``: how many names are asked at once (the sweep); ``book_size`` entries."""

    queries: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    book_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sweep("book_size", [self.book_size], 1, self.max_book())
        check_sweep("queries", self.queries, 1, self.book_size)


def make_book(
    rng: np.random.Generator,
    size: int,
    digits: int,
    names: Sequence[str] | None = None,
    number_format: str | None = None,
) -> list[tuple[str, str]]:
    """``size`` entries with distinct names: (name, number). The defaults (synthetic names,
    ``digits`` digits, the first 6-9) draw exactly as they always have."""
    names = SYNTHETIC_NAMES if names is None else names
    chosen = [names[p] for p in rng.choice(len(names), size=size, replace=False)]
    if number_format is None:
        first = rng.integers(6, 10, size=size)
        rest = rng.integers(0, 10, size=(size, digits - 1))
        # The digits as one ASCII string, cut into numbers (no per-digit string work).
        text = (np.column_stack([first, rest]) + ord("0")).astype(np.uint8).tobytes().decode()
        numbers = [text[i : i + digits] for i in range(0, len(text), digits)]
    else:
        drawn = rng.integers(0, 10, size=(size, number_format.count("#")))
        numbers = [_fill(number_format, row) for row in drawn]
    return list(zip(chosen, numbers, strict=True))


def _fill(number_format: str, digits: np.ndarray) -> str:
    it = iter(digits)
    return "".join(str(next(it)) if c == "#" else c for c in number_format)


def _book(settings: BookSettings, rng: np.random.Generator, size: int) -> list[tuple[str, str]]:
    return make_book(rng, size, settings.digits, settings.book_names(), settings.number_format)


def _lines(entries: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"{name}: {number}" for name, number in entries)


def phonebook_item(
    settings: PhonebookSettings, tokenizer: Tokenizer, size: int, rng: np.random.Generator
) -> Item:
    """One lookup in a book of ``size`` entries drawn from ``rng``."""
    book = _book(settings, rng, size)
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
    book = _book(settings, rng, settings.book_size)
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
# A number may start with any character a number_format may (``-``, ``.``, ``)`` included) but
# holds at least one digit.
_ANSWER = re.compile(r"(?:(?P<name>[^:,\n]+?) *: *)?(?P<number>[0-9.()+-]*[0-9][0-9.()+-]*)")


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


# Chance levels are named functions, not lambdas: task_format arms are pickled to data workers.
def phonebook_chance(settings: PhonebookSettings, items: Sequence[Item]) -> float:
    """Chance: guessing the number's digits."""
    return settings.number_chance()


def multi_phonebook_chance(settings: MultiPhonebookSettings, items: Sequence[Item]) -> float:
    """Chance: the best per-character guess that ignores the book (0.115 by default)."""
    return settings.character_chance()


def multi_phonebook_room(item: Item, tokenizer: Tokenizer) -> int:
    """Tokens an answer may take: the longest form ``parse_answers`` accepts (each number
    after its name, ``Name: number, ...``) and 2 more, so that a right answer in that form is
    not cut short."""
    names = asked_names(tokenizer.decode(item.context))
    numbers = tokenizer.decode(item.answer).split(", ")
    named = ", ".join(f"{name}: {number}" for name, number in zip(names, numbers, strict=True))
    return max(len(tokenizer.encode(named)), len(item.answer)) + 2


PHONEBOOK = register_task(
    Task(
        name="phonebook",
        settings=PhonebookSettings,
        sweep="book_sizes",
        label="book_size",
        item=phonebook_item,
        score=score_phonebook,
        metric="exact",
        meaning=(
            "fraction of held-out lookups whose whole number the model writes back exactly "
            "(the book and the asked name are in the prompt; chance: guessing the digits)"
        ),
        chance=phonebook_chance,
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
        meaning=(
            "fraction of the asked numbers' digits right, the i-th answer scored against the "
            "i-th name asked (chance: the best guess of each digit without the book, 0.115 "
            "for the default numbers)"
        ),
        chance=multi_phonebook_chance,
    )
)
