"""MQAR (Zoology's multi-query associative recall), mapped onto text for a byte tokenizer.

Zoology draws keys from one half of a vocabulary and values from the other and writes each pair
as two tokens. Here a key is ``key_length`` lowercase letters and a value ``value_length``
digits (disjoint alphabets, as in Zoology), written ``key:value`` and separated by spaces. After
the pairs comes a newline, then the query ``key:``; the answer is its value (exact match). One
key is asked per prompt, drawn uniformly over the pairs (Zoology asks every key at power-law
gaps in one sequence; asking one per prompt keeps decoding batched). The sweep is Zoology's grid
of pair counts (4, 8, 16, 64); a pair costs ``key_length + value_length + 2`` tokens.

Native form (a run that trained ``associative_recall``): the same pairs and the same key asked,
in that objective's layout (``recall_layout``): the pairs' tokens back to back (key then value,
no separators), the query sentinel and the key; the target is the value and the done token.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.tasks.base import (
    Item,
    Task,
    TaskSettings,
    check_sweep,
    register_task,
    text_guess,
)
from birdie_ssm.text.tokenizer import SpecialTokens, Tokenizer

LETTERS = np.array(list(string.ascii_lowercase))
DIGITS = np.array(list(string.digits))
_LETTER_BYTES = string.ascii_lowercase.encode()
_DIGIT_BYTES = string.digits.encode()
QUERY = 0  # the sentinel that opens the query list of the recall layout


def recall_layout(
    table: np.ndarray, asked: np.ndarray, key_length: int, specials: SpecialTokens
) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of associative recall: ``table`` ``[pairs, key + value]`` token rows,
    ``asked`` the rows queried. The input is the table, the query sentinel and the asked keys;
    the target is their values, then the done token."""
    # One concatenation per half: this runs once per associative-recall example.
    sentinel = [specials.sentinel_base + QUERY]
    inputs = np.concatenate([table.reshape(-1), sentinel, table[asked, :key_length].reshape(-1)])
    target = np.concatenate([table[asked, key_length:].reshape(-1), [specials.done]])
    return inputs, target


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


SPELLING_TABLE_MAX = 1 << 16  # codes below this are spelled by one table lookup


@functools.cache
def _spellings(alphabet: bytes, length: int) -> np.ndarray:
    """Every code's spelling, ``[len(alphabet) ** length, length]`` bytes (small spaces only)."""
    return _spell_codes(alphabet, np.arange(len(alphabet) ** length), length)


def _spell_codes(alphabet: bytes, codes: np.ndarray, length: int) -> np.ndarray:
    letters = np.frombuffer(alphabet, dtype=np.uint8)
    places = len(letters) ** np.arange(length - 1, -1, -1, dtype=np.int64)
    return letters[(np.asarray(codes, dtype=np.int64)[:, None] // places) % len(letters)]


def _spell(alphabet: bytes, codes: np.ndarray, length: int) -> np.ndarray:
    """``[len(codes), length]`` ASCII bytes: base-``len(alphabet)`` spelling of each code
    (a table lookup where the code space is small: this runs twice per item)."""
    if len(alphabet) ** length <= SPELLING_TABLE_MAX:
        return _spellings(alphabet, length)[codes]
    return _spell_codes(alphabet, codes, length)


def _rows(tokenizer: Tokenizer, keys: list[str], values: list[str]) -> np.ndarray | None:
    """The pairs as token rows ``[key ids, value ids]``, or None where the tokenizer spells
    them in varying token lengths (a table needs one width: such items have no native form)."""
    rows = [
        np.concatenate([tokenizer.encode(k), tokenizer.encode(v)])
        for k, v in zip(keys, values, strict=True)
    ]
    if len({len(row) for row in rows}) != 1:
        return None
    return np.stack(rows).astype(np.int32)


def _draw(
    settings: MqarSettings, pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """(keys ``[pairs, key_length]``, values ``[pairs, value_length]`` as ASCII bytes, the
    asked pair): the item's only random draws."""
    key_codes = rng.choice(len(LETTERS) ** settings.key_length, size=pairs, replace=False)
    keys = _spell(_LETTER_BYTES, key_codes, settings.key_length)
    value_codes = rng.integers(0, len(DIGITS) ** settings.value_length, size=pairs)
    values = _spell(_DIGIT_BYTES, value_codes, settings.value_length)
    return keys, values, int(rng.integers(pairs))


def _text(
    tokenizer: Tokenizer, keys: np.ndarray, values: np.ndarray, asked: int
) -> tuple[np.ndarray, np.ndarray]:
    """The text form: ``key:value`` pairs joined by spaces, a newline, ``key:``; the value.

    Laid out as one byte array (no per-pair string work) and encoded with one call each."""
    n, kl = keys.shape
    rows = np.empty((n, kl + values.shape[1] + 2), dtype=np.uint8)
    rows[:, :kl], rows[:, kl], rows[:, kl + 1 : -1], rows[:, -1] = keys, ord(":"), values, ord(" ")
    rows[-1, -1] = ord("\n")
    context = rows.tobytes() + keys[asked].tobytes() + b":"
    return tokenizer.encode(context.decode("ascii")), tokenizer.encode(
        values[asked].tobytes().decode("ascii")
    )


def mqar_text_form(
    settings: MqarSettings, tokenizer: Tokenizer, pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``mqar_item(...).form(native=False)`` without building the native form (what
    ``task_format`` trains on: 2 tokenizer calls instead of ``2 + 2 * pairs``)."""
    return _text(tokenizer, *_draw(settings, pairs, rng))


def mqar_item(
    settings: MqarSettings, tokenizer: Tokenizer, pairs: int, rng: np.random.Generator
) -> Item:
    """One prompt of ``pairs`` key-value pairs and one key asked, in both forms."""
    keys, values, asked = _draw(settings, pairs, rng)
    context, answer = _text(tokenizer, keys, values, asked)
    key_text = [k.tobytes().decode("ascii") for k in keys]
    value_text = [v.tobytes().decode("ascii") for v in values]
    table = _rows(tokenizer, key_text, value_text)
    if table is None:
        return Item(context, answer, pairs)
    native_input, native_answer = recall_layout(
        table, np.array([asked]), len(tokenizer.encode(key_text[asked])), tokenizer.specials
    )
    return Item(
        context,
        answer,
        pairs,
        native_input=native_input.astype(np.int32),
        native_answer=native_answer.astype(np.int32),
    )


def score_mqar(
    items: Sequence[Item], predictions: Sequence[np.ndarray], tokenizer: Tokenizer, native: bool
) -> list[dict[str, float]]:
    """1 when the generated value (leading spaces ignored) is the stored one (in either form
    the value is read up to the first special token: the native form ends with done)."""
    guesses = (text_guess(tokenizer, *pair) for pair in zip(items, predictions, strict=True))
    return [{"accuracy": float(guess == answer)} for guess, answer in guesses]


def mqar_chance(settings: MqarSettings, items: Sequence[Item]) -> float:
    """A guessed value is right one time in ``10 ** value_length``."""
    return 10.0**-settings.value_length


MQAR = register_task(
    Task(
        name="mqar",
        settings=MqarSettings,
        sweep="pairs",
        label="pairs",
        item=mqar_item,
        tuned_form=mqar_text_form,
        score=score_mqar,
        metric="accuracy",
        meaning=(
            "fraction of held-out queries whose value the model recalls exactly from the "
            "key-value pairs in its prompt (chance: guessing a value)"
        ),
        chance=mqar_chance,
        native=("associative_recall",),
    )
)
