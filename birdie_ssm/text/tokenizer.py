"""Tokenizers with the reserved special tokens every objective relies on.

Layout of a vocabulary: the base tokenizer's ids first (bytes 0..255 for the byte tokenizer),
then the specials: padding, end of document, the start-generating separator, a done marker,
``NUM_PARADIGMS`` paradigm tokens (one per objective class of a run) and ``NUM_SENTINELS``
sentinels for masked spans (numbered uniquely within an example: objectives cap their span
counts to fit). Padding is a real id (never predicted, masked out of the loss).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

NUM_PARADIGMS = 32
NUM_SENTINELS = 128


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the reserved tokens, placed after a base vocabulary of ``base_size`` ids."""

    base_size: int

    @property
    def pad(self) -> int:
        return self.base_size

    @property
    def eod(self) -> int:
        return self.base_size + 1

    @property
    def sep(self) -> int:
        """Separates an example's input from its target: generation starts after it."""
        return self.base_size + 2

    @property
    def done(self) -> int:
        """Ends a list-like target (e.g. selective copying's found spans)."""
        return self.base_size + 3

    @property
    def paradigm_base(self) -> int:
        return self.base_size + 4

    @property
    def sentinel_base(self) -> int:
        return self.paradigm_base + NUM_PARADIGMS

    @property
    def end(self) -> int:
        """One past the last special id."""
        return self.sentinel_base + NUM_SENTINELS

    def paradigm(self, index: int) -> int:
        """The paradigm token of the ``index``-th objective class of a run."""
        if not 0 <= index < NUM_PARADIGMS:
            raise ValueError(f"paradigm index {index} outside [0, {NUM_PARADIGMS})")
        return self.paradigm_base + index

    def sentinel(self, index: int | np.ndarray) -> int | np.ndarray:
        """The ``index``-th sentinel; indices never wrap, so sentinels are numbered uniquely
        (ValueError outside ``[0, NUM_SENTINELS)``)."""
        # A plain int skips NumPy: objectives and task items ask for sentinels per example.
        inside = (
            0 <= index < NUM_SENTINELS
            if isinstance(index, int)
            else not (np.any(np.asarray(index) < 0) or np.any(np.asarray(index) >= NUM_SENTINELS))
        )
        if not inside:
            raise ValueError(f"sentinel index outside [0, {NUM_SENTINELS}): {index!r}")
        return self.sentinel_base + index

    def is_special(self, ids: np.ndarray) -> np.ndarray:
        return (ids >= self.base_size) & (ids < self.end)


class Tokenizer(Protocol):
    """What the data side needs of a tokenizer."""

    specials: SpecialTokens
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255, followed by the special tokens."""

    def __init__(self) -> None:
        self.specials = SpecialTokens(base_size=256)
        self.vocab_size = self.specials.end

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids (no specials added)."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids to text; special ids are rendered as readable tags such as ``<sep>``."""
        return decode_with_specials(
            ids, self.specials, lambda run: bytes(run).decode("utf-8", errors="replace")
        )


def decode_with_specials(
    ids: Sequence[int] | np.ndarray,
    specials: SpecialTokens,
    decode_base: Callable[[list[int]], str],
) -> str:
    """Decode runs of base ids with ``decode_base`` and render special ids as tags."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    out: list[str] = []
    run: list[int] = []
    for i in ids.tolist():
        if 0 <= i < specials.base_size:
            run.append(i)
            continue
        if run:
            out.append(decode_base(run))
            run = []
        out.append(special_name(specials, i))
    if run:
        out.append(decode_base(run))
    return "".join(out)


def special_name(specials: SpecialTokens, i: int) -> str:
    """A readable tag for a special id."""
    names = {specials.pad: "<pad>", specials.eod: "<eod>", specials.sep: "<sep>"}
    names[specials.done] = "<done>"
    if i in names:
        return names[i]
    if specials.paradigm_base <= i < specials.sentinel_base:
        return f"<paradigm_{i - specials.paradigm_base}>"
    if specials.sentinel_base <= i < specials.end:
        return f"<sentinel_{i - specials.sentinel_base}>"
    return f"<unk_{i}>"


def document_joiner(tokenizer: Tokenizer) -> np.ndarray:
    """What goes between two documents in a token stream: the tokenizer's own end- and
    begin-of-document ids (``eos_id``/``bos_id``, where it has them), else a paragraph break."""
    own = [i for i in (getattr(tokenizer, "eos_id", None), getattr(tokenizer, "bos_id", None))]
    own = list(dict.fromkeys(i for i in own if i is not None))  # GPT-2: one id is both
    if own:
        return np.asarray(own, dtype=np.int32)
    return np.asarray(tokenizer.encode("\n\n"), dtype=np.int32)


def padded_vocab_size(tokenizer: Tokenizer, multiple: int = 64) -> int:
    """The model's vocabulary size: the tokenizer's, rounded up for efficient matmuls."""
    return -(-tokenizer.vocab_size // multiple) * multiple
