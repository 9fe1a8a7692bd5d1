"""The ground floor of text: tokenizers (byte, Hugging Face, sentencepiece, tiktoken) and
document sources (synthetic templates, built-in prose, local files and datasets)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

from birdie_ssm.config import DataConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.text.file_tokenizers import HFTokenizer, SentencePieceTokenizer, TiktokenTokenizer
from birdie_ssm.text.tokenizer import ByteTokenizer, SpecialTokens, Tokenizer, padded_vocab_size

__all__ = [
    "ByteTokenizer",
    "SpecialTokens",
    "Tokenizer",
    "make_tokenizer",
    "padded_vocab_size",
    "save_tokenizer",
]


def make_tokenizer(config: DataConfig, saved: str | Path | None = None) -> Tokenizer:
    """The tokenizer ``data.tokenizer`` names: ``byte``, ``hf``, ``sentencepiece`` or
    ``tiktoken`` (read from the copy of its files in directory ``saved`` when there is one, so a
    moved run evaluates with its own tokenizer, else from ``data.tokenizer_path``)."""
    if config.tokenizer == "byte":
        return ByteTokenizer()
    path = config.tokenizer_path
    if not path:
        raise BirdieError(f"data.tokenizer '{config.tokenizer}' needs data.tokenizer_path")
    if saved is not None:
        path = _saved_copy(config.tokenizer, Path(saved)) or path
    if config.tokenizer == "hf":
        return HFTokenizer(path)
    if config.tokenizer == "sentencepiece":
        return SentencePieceTokenizer(path)
    return TiktokenTokenizer(path)


def _saved_copy(kind: str, directory: Path) -> str | None:
    if not directory.is_dir():
        return None
    if kind == "hf":
        return str(directory) if (directory / "tokenizer.json").is_file() else None
    files = sorted(p for p in directory.iterdir() if p.is_file())
    return str(files[0]) if len(files) == 1 else None


def save_tokenizer(tokenizer: Tokenizer, directory: str | Path) -> None:
    """Copy the files ``tokenizer`` was read from into ``directory`` (a tiktoken encoding given
    by name is written out as its BPE file); the byte tokenizer has none."""
    files = getattr(tokenizer, "files", None)
    if files is None:
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copyfile(file, directory / file.name)
    if isinstance(tokenizer, TiktokenTokenizer) and not files:
        ranks = tokenizer._enc._mergeable_ranks  # tiktoken keeps no file of a named encoding
        lines = (base64.b64encode(token) + b" %d\n" % rank for token, rank in ranks.items())
        (directory / f"{tokenizer.name}.tiktoken").write_bytes(b"".join(lines))
