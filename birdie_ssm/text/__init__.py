"""The ground floor of text: tokenizers (byte, HF ``tokenizers`` files, tiktoken files) and
document sources (synthetic templates, built-in prose, local files)."""

from __future__ import annotations

from birdie_ssm.config import DataConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.text.file_tokenizers import HFTokenizer, TiktokenTokenizer
from birdie_ssm.text.tokenizer import ByteTokenizer, SpecialTokens, Tokenizer, padded_vocab_size

__all__ = ["ByteTokenizer", "SpecialTokens", "Tokenizer", "make_tokenizer", "padded_vocab_size"]


def make_tokenizer(config: DataConfig) -> Tokenizer:
    """The tokenizer ``data.tokenizer`` names: ``byte``, ``hf`` (JSON file) or ``tiktoken``."""
    if config.tokenizer == "byte":
        return ByteTokenizer()
    if not config.tokenizer_path:
        raise BirdieError(f"data.tokenizer '{config.tokenizer}' needs data.tokenizer_path")
    if config.tokenizer == "hf":
        return HFTokenizer(config.tokenizer_path)
    if config.tokenizer == "tiktoken":
        return TiktokenTokenizer(config.tokenizer_path)
    raise BirdieError(f"unknown data.tokenizer '{config.tokenizer}' (accepted: byte, hf, tiktoken)")
