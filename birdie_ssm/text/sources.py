"""Reading a corpus source's documents as a stream of text batches, in a fixed order.

A source (``SourceConfig``) is local files and globs (``.txt``/``.md`` one document per
paragraph, ``.jsonl``, ``.json`` lines or one array, ``.parquet``; ``.gz`` and ``.zst``
compressed), a ``save_to_disk`` directory, or a Hugging Face dataset by name (from the Hub when
a network is there, else the local Hugging Face cache). Files are decompressed and parsed as a
stream; datasets are Arrow tables, memory-mapped. Nothing corpus-sized is held in memory: the
token cache (``pipeline/token_cache.py``) reads these batches once and writes token arrays.
A problem found while reading names the source, the file and where in it.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from birdie_ssm.config import SourceConfig
from birdie_ssm.errors import BirdieError, not_a_file

Part = Literal["train", "val"]
BATCH = 512  # documents per batch handed to the tokenizer
TEXT_SUFFIXES = {".txt", ".text", ".md"}
JSON_SUFFIXES = {".jsonl", ".json"}
FORMATS = TEXT_SUFFIXES | JSON_SUFFIXES | {".parquet"}
COMPRESSIONS = {".gz", ".zst"}


def _split_name(path: Path) -> tuple[str, str | None]:
    """(format suffix, compression suffix or None) of a data file's name."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes[-1] if suffixes and suffixes[-1] in COMPRESSIONS else None
    rest = suffixes[:-1] if compression else suffixes
    return (rest[-1] if rest else ""), compression


def expand_files(patterns: list[str], label: str) -> list[Path]:
    """The files ``patterns`` (paths or globs) name, sorted within each pattern; a pattern that
    matches nothing, or a file of an unknown format, is a BirdieError naming it."""
    paths: list[Path] = []
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        matches = sorted(glob.glob(expanded, recursive=True)) if glob.has_magic(expanded) else []
        if not glob.has_magic(expanded) and Path(expanded).is_file():
            matches = [expanded]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches and not glob.has_magic(expanded):
            why = not_a_file(expanded)
            raise BirdieError(f"data source '{label}': file '{pattern}' {why}")
        if not matches:
            raise BirdieError(f"data source '{label}': '{pattern}' matches no file")
        for match in matches:
            path = Path(match)
            fmt, compression = _split_name(path)
            if fmt not in FORMATS or (fmt == ".parquet" and compression):
                raise BirdieError(
                    f"data source '{label}': file '{path}' has an unsupported format; accepted: "
                    f"{', '.join(sorted(FORMATS))}, the text formats optionally .gz or .zst"
                )
            if path.stat().st_size == 0:
                raise BirdieError(f"data source '{label}': file '{path}' is empty")
            paths.append(path)
    return paths


def _open_binary(path: Path, compression: str | None) -> io.BufferedIOBase:
    if compression == ".gz":
        return gzip.open(path, "rb")
    if compression == ".zst":
        try:
            import zstandard
        except ImportError:
            raise BirdieError(
                f"data file '{path}' is zstd-compressed; install zstandard "
                "(pip install 'birdie-ssm[data]')"
            ) from None
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(path.open("rb")))
    return path.open("rb")


class _Reader:
    """One file's documents, with where reading stands (for an error's 'where')."""

    def __init__(self, path: Path, label: str, text_field: str) -> None:
        self.path, self.label, self.field = path, label, text_field
        self.format, self.compression = _split_name(path)
        self.line = 0

    def fail(self, what: str) -> BirdieError:
        where = f" at line {self.line}" if self.line else ""
        return BirdieError(f"data source '{self.label}': file '{self.path}'{where}: {what}")

    def _lines(self) -> Iterator[str]:
        with _open_binary(self.path, self.compression) as raw:
            for line in raw:
                self.line += 1
                try:
                    yield line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise self.fail(f"not valid UTF-8 ({exc.reason})") from None

    def documents(self) -> Iterator[str]:
        try:
            if self.format == ".parquet":
                yield from self._parquet()
            elif self.format in TEXT_SUFFIXES:
                yield from self._paragraphs()
            else:
                yield from self._json()
        except BirdieError:
            raise
        except (OSError, EOFError, ValueError) as exc:  # truncated or corrupt compressed data
            raise self.fail(f"cannot be read ({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # zstandard.ZstdError and pyarrow's errors have no common base
            raise self.fail(f"cannot be read ({type(exc).__name__}: {exc})") from None

    def _paragraphs(self) -> Iterator[str]:
        lines: list[str] = []
        for line in self._lines():
            if line.strip():
                lines.append(line)
            elif lines:
                yield "".join(lines).strip("\n")
                lines = []
        if lines:
            yield "".join(lines).strip("\n")

    def _field(self, record: Any) -> str | None:
        if not isinstance(record, dict):
            raise self.fail(f"a record is {type(record).__name__}, not an object")
        if self.field not in record:
            fields = ", ".join(sorted(record)) or "none"
            raise self.fail(f"text_field '{self.field}' is not a column; columns: {fields}")
        value = record[self.field]
        return value if isinstance(value, str) else None

    def _json(self) -> Iterator[str]:
        lines = self._lines()
        for line in lines:
            if not line.strip():
                continue
            if line.lstrip().startswith("["):  # one JSON array: read whole (jsonl streams)
                rest = line + "".join(lines)
                self.line = 0
                try:
                    records = json.loads(rest)
                except json.JSONDecodeError as exc:
                    raise self.fail(f"is not valid JSON ({exc})") from None
                for record in records:
                    if (text := self._field(record)) is not None:
                        yield text
                return
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise self.fail(f"is not valid JSON ({exc.msg})") from None
            if (text := self._field(record)) is not None:
                yield text

    def _parquet(self) -> Iterator[str]:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(self.path)
        if self.field not in table.schema_arrow.names:
            fields = ", ".join(table.schema_arrow.names)
            raise self.fail(f"text_field '{self.field}' is not a column; columns: {fields}")
        for batch in table.iter_batches(batch_size=BATCH, columns=[self.field]):
            yield from (t for t in batch.column(0).to_pylist() if isinstance(t, str))


def _file_batches(paths: list[Path], label: str, text_field: str) -> Iterator[list[str]]:
    batch: list[str] = []
    for path in paths:
        for text in _Reader(path, label, text_field).documents():
            batch.append(text)
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _quiet_datasets() -> Any:
    import datasets  # deferred: importing datasets costs seconds and most runs never need it

    datasets.disable_progress_bars()
    logging.getLogger("datasets").setLevel(logging.ERROR)
    return datasets


def open_dataset(source: SourceConfig, split: str) -> Any:
    """The ``datasets.Dataset`` (Arrow, memory-mapped) of a dataset source's ``split``."""
    datasets = _quiet_datasets()
    label, name = source.label, source.dataset
    assert name is not None
    local = Path(name).expanduser()
    if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
        try:
            loaded = datasets.load_from_disk(str(local))
        except FileNotFoundError as exc:
            raise BirdieError(
                f"data source '{label}': '{local}' is not a save_to_disk directory ({exc})"
            ) from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise BirdieError(
                    f"data source '{label}': no split '{split}'; splits: {', '.join(loaded)}"
                )
            loaded = loaded[split]
        # A saved Dataset (not a DatasetDict) has no splits: it is the one asked for.
        return _with_column(loaded, source)
    try:
        loaded = datasets.load_dataset(name, source.config, split=split, revision=source.revision)
    except Exception as exc:  # datasets raises many types; each becomes one line
        raise BirdieError(
            f"data source '{label}': {_hub_problem(name, source, split, exc)}"
        ) from None
    return _with_column(loaded, source)


def _hub_problem(name: str, source: SourceConfig, split: str, exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "split" in text.lower() and split in text:
        return f"no split '{split}' in Hub dataset '{name}' ({text[:200]})"
    if "config" in text.lower() and source.config:
        return f"Hub dataset '{name}' has no config '{source.config}' ({text[:200]})"
    return (
        f"Hub dataset '{name}' cannot be loaded: not reachable and not in the local Hugging Face "
        f"cache, or no such dataset ({type(exc).__name__}: {text[:200]})"
    )


def _with_column(ds: Any, source: SourceConfig) -> Any:
    if source.text_field not in ds.column_names:
        raise BirdieError(
            f"data source '{source.label}': text_field '{source.text_field}' is not a column; "
            f"columns: {', '.join(ds.column_names)}"
        )
    return ds


def _dataset_batches(ds: Any, field: str) -> Iterator[list[str]]:
    column = ds.data.column(field)  # a pyarrow ChunkedArray over the memory-mapped table
    for start in range(0, len(column), BATCH):
        chunk = column.slice(start, BATCH).to_pylist()
        yield [t for t in chunk if isinstance(t, str)]


def has_validation(source: SourceConfig) -> bool:
    """Whether the source names its own validation data (else a share is held out)."""
    return bool(source.val_files) or source.val_split is not None


def text_batches(source: SourceConfig, part: Part) -> Iterator[list[str]]:
    """The documents of the source's training or validation part, in batches, in order."""
    if source.dataset is None:
        paths = expand_files(source.files if part == "train" else source.val_files, source.label)
        return _file_batches(paths, source.label, source.text_field)
    if part == "val" and source.val_files:
        paths = expand_files(source.val_files, source.label)
        return _file_batches(paths, source.label, source.text_field)
    split = source.split if part == "train" else source.val_split
    assert split is not None
    return _dataset_batches(open_dataset(source, split), source.text_field)


def fingerprint(source: SourceConfig, part: Part) -> str:
    """Identifies the part's content: files by path, size and modification time; datasets by
    their Arrow fingerprint. (A check before reading anything: a fresh name, fresh tokens.)"""
    h = hashlib.sha256()
    h.update(source.text_field.encode())
    if source.dataset is None or (part == "val" and source.val_files):
        for path in expand_files(source.files if part == "train" else source.val_files,
                                 source.label):  # fmt: skip
            stat = path.stat()
            h.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    else:
        split = source.split if part == "train" else source.val_split
        assert split is not None
        h.update(f"{open_dataset(source, split)._fingerprint}\0{split}".encode())
    return h.hexdigest()[:24]
