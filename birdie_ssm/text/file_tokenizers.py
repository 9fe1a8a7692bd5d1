"""Standard tokenizers: Hugging Face (file, directory or Hub name through the HF cache),
sentencepiece ``.model`` files, and tiktoken (encoding name, or a BPE file with its encoding's
split rule).

Each appends the reserved special tokens after its own vocabulary, so objectives and packing see
the same id layout as with the byte tokenizer; each names its own BOS/EOS (``bos_id``,
``eos_id``, None where it has none: the pipeline joins documents with them), the ``files`` it
was read from (copied into a run directory) and a ``fingerprint`` (the token cache's key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from birdie_ssm.errors import BirdieError, not_a_file
from birdie_ssm.text.piecewise import piece_encoder
from birdie_ssm.text.tokenizer import SpecialTokens, decode_with_specials

# Split rules (pre-tokenisation) and end-of-text ids of OpenAI's encodings
# (tiktoken_ext/openai_public.py): a BPE file alone does not say how to split text.
R50K_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
ENCODINGS = {  # name: (split rule, end-of-text id)
    "gpt2": (R50K_PATTERN, 50256),
    "r50k_base": (R50K_PATTERN, 50256),
    "p50k_base": (R50K_PATTERN, 50256),
    "cl100k_base": (CL100K_PATTERN, 100257),
    "o200k_base": (O200K_PATTERN, 199999),
}
ENDOFTEXT = "<|endoftext|>"


def _existing(path: str | Path, kind: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise BirdieError(f"data.tokenizer_path: {kind} file '{path}' {not_a_file(path)}")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:24]


def _looks_local(name: str) -> bool:
    """A path rather than a Hub name: it exists, or is written as a path."""
    return Path(name).expanduser().exists() or name.startswith(("/", ".", "~")) or "\\" in name


def _hub_file(name: str, filename: str, required: bool) -> Path | None:
    """``filename`` of Hub repository ``name``: from the Hub, else the local Hugging Face cache
    (``HF_HUB_OFFLINE=1`` goes straight to the cache)."""
    from huggingface_hub import hf_hub_download

    for local_only in (False, True):
        try:
            return Path(hf_hub_download(name, filename, local_files_only=local_only))
        except Exception:  # offline, not cached, no such repository or file: all one answer
            continue
    if required:
        raise BirdieError(
            f"data.tokenizer_path: '{name}' is neither a local file or directory nor a Hub "
            f"tokenizer that can be downloaded or found in the local Hugging Face cache"
        )
    return None


def _special_content(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizer:
    """A Hugging Face tokenizer: a ``tokenizer.json``, a directory holding one (a Llama or GPT-2
    download), or a Hub name; its ids first, then the specials. Its own BOS/EOS come from
    ``tokenizer_config.json`` beside it, where there is one."""

    def __init__(self, path: str | Path) -> None:
        import tokenizers  # deferred: only runs that ask for it pay the import

        name = str(path)
        config: Path | None = None
        if _looks_local(name):
            path = Path(name).expanduser()
            if path.is_dir():
                config = path / "tokenizer_config.json"
                path = path / "tokenizer.json"
            path = _existing(path, "tokenizers JSON")
            config = config or path.with_name("tokenizer_config.json")
        else:
            path = _hub_file(name, "tokenizer.json", required=True)
            config = _hub_file(name, "tokenizer_config.json", required=False)
        try:
            self._tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception on malformed JSON
            raise BirdieError(
                f"data.tokenizer_path: '{path}' is not a valid tokenizers JSON file ({exc})"
            ) from None
        self._pieces = piece_encoder(self._tok)  # None: every text goes to the library
        self.files = [path] + ([config] if config and config.is_file() else [])
        self.fingerprint = "hf:" + "".join(_sha(f) for f in self.files)
        self.specials = SpecialTokens(base_size=self._tok.get_vocab_size(with_added_tokens=True))
        self.vocab_size = self.specials.end
        settings = json.loads(config.read_text()) if config and config.is_file() else {}
        self.bos_id, self.eos_id = (
            self._tok.token_to_id(t) if (t := _special_content(settings.get(key))) else None
            for key in ("bos_token", "eos_token")
        )

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids (the file's own special tokens are not added)."""
        ids = self._pieces.encode(text) if self._pieces is not None else None
        if ids is None:
            ids = np.asarray(self._tok.encode(text, add_special_tokens=False).ids, np.int32)
        return ids

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Many texts at once (the library encodes them on all cores)."""
        # encode_batch_fast (tokenizers >= 0.21) skips the offsets nobody here reads
        batch = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
        out = batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in out]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids to text; reserved special ids are rendered as tags such as ``<sep>``."""
        return decode_with_specials(
            ids, self.specials, lambda run: self._tok.decode(run, skip_special_tokens=False)
        )


class SentencePieceTokenizer:
    """A sentencepiece ``.model`` file (a Llama/T5-style tokenizer); its ids first, then the
    specials; its own BOS/EOS as the model file defines them."""

    def __init__(self, path: str | Path) -> None:
        try:
            import sentencepiece
        except ImportError:
            raise BirdieError(
                "data.tokenizer 'sentencepiece' needs the sentencepiece package "
                "(pip install 'birdie-ssm[data]')"
            ) from None
        path = _existing(path, "sentencepiece model")
        self.path = path
        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        except Exception as exc:  # RuntimeError or OSError from the C++ side
            raise BirdieError(
                f"data.tokenizer_path: '{path}' is not a sentencepiece model ({exc})"
            ) from None
        self.files = [path]
        self.fingerprint = "sentencepiece:" + _sha(path)
        self.specials = SpecialTokens(base_size=self._sp.get_piece_size())
        self.vocab_size = self.specials.end
        self.bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else None
        self.eos_id = self._sp.eos_id() if self._sp.eos_id() >= 0 else None

    def __reduce__(self) -> tuple[object, ...]:
        return (SentencePieceTokenizer, (str(self.path),))

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids (no BOS/EOS added)."""
        return np.asarray(self._sp.encode(text), dtype=np.int32)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(ids, dtype=np.int32) for ids in self._sp.encode(texts)]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids to text; reserved special ids are rendered as tags such as ``<sep>``."""
        return decode_with_specials(ids, self.specials, self._sp.decode)


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
    """A tiktoken encoding by name (``cl100k_base``, ``o200k_base``, ``gpt2``...: downloaded or
    read from tiktoken's cache), or a BPE file split by the rule of the encoding its name
    starts with (``o200k_base.tiktoken``; another name: cl100k's rule). Its ids (and its
    end-of-text token, the EOS) first, then the specials."""

    def __init__(self, path: str | Path) -> None:
        import tiktoken

        name = str(path)
        if name in ENCODINGS and not Path(name).exists():
            try:
                self._enc = tiktoken.get_encoding(name)
            except Exception as exc:  # no network and not in tiktoken's cache
                raise BirdieError(
                    f"data.tokenizer_path: tiktoken encoding '{name}' can be neither downloaded "
                    f"nor found in tiktoken's cache (TIKTOKEN_CACHE_DIR) ({type(exc).__name__})"
                ) from None
            self.files: list[Path] = []
            self.fingerprint = f"tiktoken:{name}"
            self.eos_id: int | None = self._enc.eot_token
        else:
            file = _existing(name, "tiktoken BPE")
            ranks = read_bpe_ranks(file)
            encoding = next((e for e in ENCODINGS if file.name.startswith(e)), "cl100k_base")
            pattern, eot = ENCODINGS[encoding]
            if len(ranks) + 1 < eot:  # a smaller file than the encoding: EOT after its ranks
                eot = len(ranks)
            self._enc = tiktoken.Encoding(
                name=file.stem,
                pat_str=pattern,
                mergeable_ranks=ranks,
                special_tokens={ENDOFTEXT: eot},
            )
            self.files = [file]
            self.fingerprint = f"tiktoken:{encoding}:{_sha(file)}"
            self.eos_id = eot
        self.bos_id: int | None = None
        self.name = name
        self.specials = SpecialTokens(base_size=self._enc.n_vocab)
        self.vocab_size = self.specials.end

    def __reduce__(self) -> tuple[object, ...]:
        return (TiktokenTokenizer, (self.name,))

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids (special-token text is encoded as ordinary text)."""
        return np.asarray(self._enc.encode_ordinary(text), dtype=np.int32)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Many texts at once (tiktoken's threads)."""
        return [np.asarray(ids, dtype=np.int32) for ids in self._enc.encode_ordinary_batch(texts)]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids to text; reserved special ids are rendered as tags such as ``<sep>``."""
        return decode_with_specials(
            ids,
            self.specials,
            lambda run: self._enc.decode_bytes(run).decode("utf-8", errors="replace"),
        )
