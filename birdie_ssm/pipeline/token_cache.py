"""The token cache: a corpus part tokenized once, memory-mapped by every run, seed and worker.

A cache entry is a directory named by what determines its content (the part's fingerprint,
the tokenizer's, the format version): ``tokens.bin`` (every document's base-vocabulary ids,
back to back, uint16 or uint32), ``offsets.bin`` (int64, one more than there are documents) and
``meta.json``. It is built in ``<key>.partial`` and renamed when whole, under a file lock, so
concurrent starts build it once; an interrupted build continues where its ``progress.json``
stands, and a build that stops on bad data removes what it wrote. A ``TokenDocs`` pickles as
its directory: workers map the files themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from birdie_ssm.config import DataConfig, SourceConfig
from birdie_ssm.errors import BirdieError, check_writable
from birdie_ssm.text.sources import Part, fingerprint, text_batches
from birdie_ssm.text.tokenizer import Tokenizer

VERSION = 1
_PROGRESS_EVERY = 16  # batches between progress records of a build
log = logging.getLogger("birdie_ssm.data")


def cache_root(data: DataConfig) -> Path:
    """Where token caches live: ``data.cache_dir``, else ``$BIRDIE_CACHE/tokens``, else
    ``~/.cache/birdie-ssm/tokens``."""
    if data.cache_dir:
        return Path(data.cache_dir).expanduser()
    base = os.environ.get("BIRDIE_CACHE") or Path.home() / ".cache" / "birdie-ssm"
    return Path(base).expanduser() / "tokens"


class TokenDocs:
    """The documents of one cache entry, as int32 token arrays, read from memory-mapped files."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.meta = json.loads((self.directory / "meta.json").read_text())
        self.offsets = np.memmap(self.directory / "offsets.bin", dtype=np.int64, mode="r")
        n_tokens = int(self.offsets[-1])
        dtype = np.dtype(self.meta["dtype"])
        self.tokens = (
            np.memmap(self.directory / "tokens.bin", dtype=dtype, mode="r", shape=(n_tokens,))
            if n_tokens
            else np.zeros(0, dtype=dtype)
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.tokens[start:end].astype(np.int32)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TokenDocs, (str(self.directory),))


def _tokenizer_key(tokenizer: Tokenizer) -> str:
    return getattr(tokenizer, "fingerprint", type(tokenizer).__name__)


def entry_key(source: SourceConfig, part: Part, tokenizer: Tokenizer) -> str:
    """The cache entry's name: what decides its content, hashed."""
    what = f"{VERSION}\0{fingerprint(source, part)}\0{_tokenizer_key(tokenizer)}"
    return hashlib.sha256(what.encode()).hexdigest()[:32]


def _encoder(tokenizer: Tokenizer) -> Any:
    batch = getattr(tokenizer, "encode_batch", None)
    return batch or (lambda texts: [tokenizer.encode(t) for t in texts])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_docs(source: SourceConfig, part: Part, tokenizer: Tokenizer, root: Path) -> TokenDocs:
    """The part's documents from the cache under ``root``, built first if absent."""
    root = Path(root)
    check_writable(root, "data.cache_dir")
    root.mkdir(parents=True, exist_ok=True)
    directory = root / entry_key(source, part, tokenizer)
    if (directory / "meta.json").is_file():
        return TokenDocs(directory)
    with _locked(root / f"{directory.name}.lock"):
        if not (directory / "meta.json").is_file():  # another process may have built it
            _build(source, part, tokenizer, directory)
    return TokenDocs(directory)


def _build(source: SourceConfig, part: Part, tokenizer: Tokenizer, directory: Path) -> None:
    partial = directory.with_name(directory.name + ".partial")
    partial.mkdir(exist_ok=True)
    progress_file = partial / "progress.json"
    done = json.loads(progress_file.read_text()) if progress_file.is_file() else None
    base = tokenizer.specials.base_size
    dtype = np.dtype(np.uint16 if base <= 1 << 16 else np.uint32)
    docs, tokens = (done["docs"], done["tokens"]) if done else (0, 0)
    encode = _encoder(tokenizer)
    started, chars = time.perf_counter(), 0
    # A progress bar on a terminal only (disable=None): a big corpus takes minutes.
    bar = tqdm(desc=f"token cache: {source.label} ({part})", unit=" docs", disable=None)
    try:
        with (
            (partial / "tokens.bin").open("ab") as tok_file,
            (partial / "offsets.bin").open("ab") as off_file,
        ):
            # What an interrupted build wrote after its last progress record is written again.
            tok_file.truncate(tokens * dtype.itemsize)
            off_file.truncate((docs + 1) * 8 if docs else 0)
            if docs == 0:
                off_file.write(np.zeros(1, dtype=np.int64).tobytes())
            skip = docs
            for number, batch in enumerate(text_batches(source, part), start=1):
                bar.update(len(batch))
                if skip >= len(batch):
                    skip -= len(batch)
                    continue
                batch, skip = batch[skip:], 0
                texts = [t if t.strip() else "" for t in batch]
                chars += sum(map(len, texts))
                encoded = encode(texts)
                lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(texts))
                if lengths.any():
                    tok_file.write(np.concatenate(encoded).astype(dtype).tobytes())
                off_file.write((tokens + np.cumsum(lengths)).tobytes())
                docs, tokens = docs + len(texts), tokens + int(lengths.sum())
                if number % _PROGRESS_EVERY == 0:
                    tok_file.flush()
                    off_file.flush()
                    _write_json(progress_file, {"docs": docs, "tokens": tokens})
    except BirdieError:
        shutil.rmtree(partial, ignore_errors=True)  # bad data: nothing half-made is kept
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    meta = {
        "version": VERSION,
        "source": source.label,
        "part": part,
        "tokenizer": _tokenizer_key(tokenizer),
        "dtype": dtype.name,
        "documents": docs,
        "tokens": tokens,
        "build_seconds": round(seconds, 3),
        "chars_per_second": round(chars / max(seconds, 1e-9)),
    }
    if tokens == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BirdieError(
            f"data source '{source.label}': its {part} part holds no non-empty documents"
        )
    _write_json(partial / "meta.json", meta)
    progress_file.unlink(missing_ok=True)
    os.replace(partial, directory)
    log.info(
        "token cache: %s (%s) %d documents, %d tokens in %.1f s (%.2f MB of text/s)",
        source.label, part, docs, tokens, seconds, chars / max(seconds, 1e-9) / 1e6,
    )  # fmt: skip


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)
