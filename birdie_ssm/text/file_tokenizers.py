"""Tokenizers read from local files: a Hugging Face ``tokenizers`` JSON or a tiktoken BPE file.

Both append the reserved special tokens after the file's own vocabulary, so objectives and
packing see the same id layout as with the byte tokenizer.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from birdie_ssm.errors import BirdieError, not_a_file
from birdie_ssm.text.tokenizer import SpecialTokens, decode_with_specials

# GPT-4's (cl100k) pre-tokenisation pattern: a BPE file alone does not say how to split text.
CL100K_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _existing(path: str | Path, kind: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise BirdieError(f"data.tokenizer_path: {kind} file '{path}' {not_a_file(path)}")
    return path


class HFTokenizer:
    """A Hugging Face ``tokenizers`` JSON file; its ids first, then the specials."""

    def __init__(self, path: str | Path) -> None:
        import tokenizers  # deferred: only runs that ask for it pay the import

        path = _existing(path, "tokenizers JSON")
        try:
            self._tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception on malformed JSON
            raise BirdieError(
                f"data.tokenizer_path: '{path}' is not a valid tokenizers JSON file ({exc})"
            ) from None
        self.specials = SpecialTokens(base_size=self._tok.get_vocab_size(with_added_tokens=True))
        self.vocab_size = self.specials.end

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids (the file's own special tokens are not added)."""
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids to text; reserved special ids are rendered as tags such as ``<sep>``."""
        return decode_with_specials(
            ids, self.specials, lambda run: self._tok.decode(run, skip_special_tokens=False)
        )


def read_bpe_ranks(path: Path) -> dict[bytes, int]:
    """The ``base64-token rank`` lines of a tiktoken BPE file (read directly: no cache)."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise BirdieError(
                f"data.tokenizer_path: line {number} of '{path}' is not 'base64-token rank'"
            ) from None
    missing = 256 - len({t for t in ranks if len(t) == 1})
    if missing:
        raise BirdieError(
            f"data.tokenizer_path: '{path}' lacks {missing} of the 256 single-byte tokens a "
            "byte-level BPE needs to encode any text"
        )
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise BirdieError(f"data.tokenizer_path: ranks in '{path}' must be 0..{len(ranks) - 1}")
    return ranks


class TiktokenTokenizer:
    """A local tiktoken BPE file (cl100k pre-tokenisation); its ids first, then the specials."""

    def __init__(self, path: str | Path) -> None:
        import tiktoken

        path = _existing(path, "tiktoken BPE")
        ranks = read_bpe_ranks(path)
        self._enc = tiktoken.Encoding(
            name=path.stem, pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
        )
        self.specials = SpecialTokens(base_size=len(ranks))
        self.vocab_size = self.specials.end

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids."""
        return np.asarray(self._enc.encode_ordinary(text), dtype=np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids to text; reserved special ids are rendered as tags such as ``<sep>``."""
        return decode_with_specials(
            ids,
            self.specials,
            lambda run: self._enc.decode_bytes(run).decode("utf-8", errors="replace"),
        )
