"""Exact, memoized encoding for GPT-2-style byte-level BPE tokenizers (Hugging Face ``tokenizers``).

Such a tokenizer encodes text piece by piece: its ByteLevel pre-tokenizer splits the text by
GPT-2's rule and maps each byte to a printable character, then its BPE model turns each piece
into tokens on its own. So ``encode(text)`` is the concatenation of each piece's tokens, and a
piece seen before need not be merged again. Task items (evaluation and ``task_format``) are
built mostly from a small vocabulary of pieces (names, keys, values, punctuation), so most
pieces are cache hits, and the library's per-call work (offsets, masks, the Encoding object)
is skipped for all of them.

On ASCII text GPT-2's rule needs no Unicode tables (``\\p{L}`` is ``[A-Za-z]``, ``\\p{N}`` is
``[0-9]``, ``\\s`` the six ASCII spaces), so Python's ``re`` splits exactly as the library's
Oniguruma does. Any other text, text holding one of the tokenizer's added tokens, and any
tokenizer that is not of this kind go to the library's own encode.
tests/text/test_piecewise.py checks the two agree (random text, every short string of the
characters the rule treats apart, every synthesised task's items).
"""

from __future__ import annotations

import json
import re
from array import array
from typing import Any

import numpy as np

SPACE = r"\t\n\x0b\x0c\r "  # what Oniguruma's \s matches among ASCII characters
# tokenizers' ByteLevel split rule (pre_tokenizers/byte_level.rs), its classes spelled in ASCII
GPT2_ASCII_SPLIT = re.compile(
    rf"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^{SPACE}A-Za-z0-9]+"""
    rf"""|[{SPACE}]+(?![^{SPACE}])|[{SPACE}]+"""
)
MAX_PIECES = 1 << 16  # cached pieces before the cache starts over (bounds a worker's memory)


def piece_encoder(tok: Any) -> PieceEncoder | None:
    """A ``PieceEncoder`` for a ``tokenizers.Tokenizer`` of this kind, else None."""
    spec = json.loads(tok.to_str())
    return PieceEncoder(tok, spec) if _qualifies(spec) else None


def _qualifies(spec: dict[str, Any]) -> bool:
    pre = spec.get("pre_tokenizer") or {}
    post = spec.get("post_processor")
    model = spec.get("model") or {}
    return (
        spec.get("normalizer") is None
        and spec.get("truncation") is None
        and spec.get("padding") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and not pre.get("add_prefix_space", False)
        # a ByteLevel post-processor only trims offsets; others may add tokens
        and (post is None or post.get("type") == "ByteLevel")
        and model.get("type") == "BPE"
        and not model.get("dropout")  # dropout makes the merges random per call
    )


class PieceEncoder:
    """Encodes ASCII text as the library does, one cached piece at a time (None: ask the
    library)."""

    def __init__(self, tok: Any, spec: dict[str, Any]) -> None:
        self._tok = tok
        added = [a["content"] for a in spec.get("added_tokens") or []]
        # Added tokens are matched in the text before the split: text holding one is the
        # library's to encode.
        self._added = re.compile("|".join(map(re.escape, added))) if added else None
        # The ASCII bytes as the pre-tokenizer maps them (a lone character is a lone piece).
        self._bytes = str.maketrans(
            {chr(b): tok.pre_tokenizer.pre_tokenize_str(chr(b))[0][0] for b in range(128)}
        )
        self._cache: dict[str, bytes] = {}  # piece: its ids, int32 bytes

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}  # a data worker starts with an empty cache

    def encode(self, text: str) -> np.ndarray | None:
        """The int32 ids the library's encode gives ``text``, or None where this cannot tell."""
        if not text.isascii() or (self._added is not None and self._added.search(text)):
            return None
        pieces = GPT2_ASCII_SPLIT.findall(text)
        # Lookups and the join run in C: per piece, Python only meets the misses.
        found = list(map(self._cache.get, pieces))
        if None in found:
            found = [
                self._tokenize(p) if f is None else f for p, f in zip(pieces, found, strict=True)
            ]
        return np.frombuffer(bytearray(b"".join(found)), dtype=np.int32)  # writable

    def _tokenize(self, piece: str) -> bytes:
        if len(self._cache) >= MAX_PIECES:
            self._cache.clear()
        tokens = self._tok.model.tokenize(piece.translate(self._bytes))
        # array's "i" is a 32-bit C int wherever numpy runs, and cheaper than numpy for a few ids
        ids = self._cache[piece] = array("i", [t.id for t in tokens]).tobytes()
        return ids
