"""Which document comes next: sources as token documents, their order, and the corpus mixture.

Every source is a finite list of token documents (the token cache, or a small in-memory corpus)
or an unbounded generator (the synthetic corpus). A finite source is split once, independently
of the seed: its own validation part, or every 50th document held out (at least the last one),
never trained on. Its training documents are read epoch after epoch, each epoch in a fresh
seeded order (a Feistel permutation: any size, no table). Position ``u`` of a source's training
stream is shared out by arithmetic: stream ``s`` of ``S`` on host ``h`` of ``P`` reads positions
``(c * S + s) * P + h`` for its cursor ``c = 0, 1, ...``; so hosts read disjoint documents and
the order depends on the number of streams, never on the number of data workers.

The corpus mixture is honoured in tokens: each next document comes from the source furthest
behind its weight's share of the tokens read so far. A ``SourceMixer``'s state is its cursors
and token counts per source: small, JSON-serialisable, exact on resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from birdie_ssm.config import DataConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.pipeline.token_cache import cache_root, cached_docs
from birdie_ssm.text.corpus import MIN_DOCUMENTS, DocumentSource, FileSource, SourceSet
from birdie_ssm.text.sources import has_validation
from birdie_ssm.text.tokenizer import Tokenizer

_HELD_OUT_EVERY = 50
_MASK64 = (1 << 64) - 1


class Documents(Protocol):
    """A finite list of token documents."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def permute(index: int, n: int, key: int) -> int:
    """Position ``index`` of a seeded permutation of ``range(n)`` (``key`` picks which): a
    four-round Feistel network on the smallest even bit width holding ``n``, cycle-walked."""
    if not 0 <= index < n:
        raise ValueError(f"index {index} outside [0, {n})")
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    x = index
    while True:
        left, right = x >> half, x & mask
        for round_ in range(4):
            left, right = right, left ^ (_mix64(key ^ (right << 8) ^ round_) & mask)
        x = (left << half) | right
        if x < n:
            return x


class Split:
    """A finite source's documents split in two, independently of any seed: ``n_val`` held
    out (its own validation part; else every 50th document, at least the last one) and
    ``n_train`` to train on; ``train_index``/``val_index`` map each side's index to a document."""

    def __init__(self, n: int, separate_val: int | None = None) -> None:
        self.n, self.separate = n, separate_val is not None
        if self.separate:
            self.n_train, self.n_val = n, int(separate_val)
        elif n < MIN_DOCUMENTS:
            raise ValueError(f"{n} documents cannot be split")
        elif n < _HELD_OUT_EVERY:
            self.n_train, self.n_val = n - 1, 1
        else:
            self.n_train, self.n_val = n - n // _HELD_OUT_EVERY, n // _HELD_OUT_EVERY

    def train_index(self, t: int) -> int:
        if self.separate or self.n < _HELD_OUT_EVERY:
            return t
        return t + t // (_HELD_OUT_EVERY - 1)

    def val_index(self, j: int) -> int:
        if self.separate:
            return j
        return self.n - 1 if self.n < _HELD_OUT_EVERY else _HELD_OUT_EVERY * j + _HELD_OUT_EVERY - 1


class FiniteSource:
    """A finite source: training documents in a fresh seeded order each epoch; validation
    documents its own, or the held-out share."""

    def __init__(
        self, train: Documents, val: Documents | None, key: int, label: str, shuffle: bool = True
    ) -> None:
        self.train_docs, self.val_docs, self.key, self.shuffle = train, val, key, shuffle
        if val is None and len(train) < MIN_DOCUMENTS:
            raise BirdieError(
                f"data source '{label}' holds {len(train)} document; at least "
                f"{MIN_DOCUMENTS} are needed (one is held out for validation)"
            )
        if val is not None and not len(val):
            raise BirdieError(f"data source '{label}': its validation part is empty")
        self.split = Split(len(train), None if val is None else len(val))
        self.n_train = self.split.n_train

    def train(self, position: int) -> np.ndarray:
        epoch, index = divmod(position, self.n_train)
        if self.shuffle:
            index = permute(index, self.n_train, _mix64(self.key ^ (epoch << 20)))
        return self.train_docs[self.split.train_index(index)]

    def val(self, index: int) -> np.ndarray:
        docs = self.train_docs if self.val_docs is None else self.val_docs
        return docs[self.split.val_index(index % self.split.n_val)]


class EncodedSource:
    """Documents of a text source (synthetic, or a small in-memory corpus), encoded as read."""

    def __init__(self, source: DocumentSource, tokenizer: Tokenizer) -> None:
        self.source, self.tokenizer = source, tokenizer

    def train(self, position: int) -> np.ndarray:
        return self.tokenizer.encode(self.source.train(position))

    def val(self, index: int) -> np.ndarray:
        return self.tokenizer.encode(self.source.val(index))


class _TokenList:
    """In-memory texts encoded on access (a corpus small enough to hold: the built-in prose)."""

    def __init__(self, texts: Sequence[str], tokenizer: Tokenizer) -> None:
        self.texts, self.tokenizer = texts, tokenizer

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.tokenizer.encode(self.texts[index])


@dataclass
class TokenCorpus:
    """The run's sources as token documents, with their names and normalised weights."""

    names: list[str]
    weights: list[float]
    sources: list[Any]  # FiniteSource | EncodedSource: train(position), val(index)


def token_corpus(data: DataConfig, source: DocumentSource, tokenizer: Tokenizer) -> TokenCorpus:
    """The corpus ``make_source(data)`` describes, as token documents: file and dataset sources
    through the token cache (built here, once), the others encoded as they are read."""
    if isinstance(source, SourceSet):
        names, weights, sources = [], [], []
        root = cache_root(data)
        for k, spec in enumerate(source.specs):
            train = cached_docs(spec, "train", tokenizer, root)
            val = cached_docs(spec, "val", tokenizer, root) if has_validation(spec) else None
            names.append(spec.label)
            weights.append(spec.weight)
            key = _mix64(source.seed * 1_000_003 + k)
            sources.append(FiniteSource(train, val, key, spec.label))
        total = sum(weights)
        return TokenCorpus(names, [w / total for w in weights], sources)
    if isinstance(source, FileSource):
        # A FileSource has split and shuffled its texts already.
        train = _TokenList(source.train_texts, tokenizer)
        val = _TokenList(source.held_out, tokenizer)
        finite = FiniteSource(train, val, 0, "corpus", shuffle=False)
        return TokenCorpus(["corpus"], [1.0], [finite])
    return TokenCorpus(["corpus"], [1.0], [EncodedSource(source, tokenizer)])


class _TextStream:
    """One unbounded text stream read as both training and validation documents."""

    def __init__(self, documents: Callable[[int], str]) -> None:
        self.train = self.val = documents


def as_corpus(documents: TokenCorpus | Callable[[int], str], tokenizer: Tokenizer) -> TokenCorpus:
    """A corpus as given, or one unbounded text stream (document ``i`` = ``documents(i)``)."""
    if isinstance(documents, TokenCorpus):
        return documents
    return TokenCorpus(["corpus"], [1.0], [EncodedSource(_TextStream(documents), tokenizer)])


class SourceMixer:
    """One stream's documents: from the source furthest behind its share of tokens read, at the
    positions this stream of this host owns (training), or validation documents."""

    def __init__(
        self,
        corpus: TokenCorpus,
        *,
        stream: int = 0,
        streams: int = 1,
        process_index: int = 0,
        process_count: int = 1,
        part: str = "train",
    ) -> None:
        self.corpus, self.part = corpus, part
        self.stream, self.streams = stream, streams
        self.host, self.hosts = process_index, process_count
        self.cursors = [0] * len(corpus.sources)
        self.tokens = [0] * len(corpus.sources)

    def next(self) -> np.ndarray:
        """The next document's tokens (possibly none)."""
        total = sum(self.tokens)
        deficits = [w * total - t if w > 0 else -np.inf
                    for w, t in zip(self.corpus.weights, self.tokens, strict=True)]  # fmt: skip
        k = deficits.index(max(deficits))
        position = (self.cursors[k] * self.streams + self.stream) * self.hosts + self.host
        self.cursors[k] += 1
        source = self.corpus.sources[k]
        doc = source.train(position) if self.part == "train" else source.val(position)
        self.tokens[k] += len(doc)
        return doc

    def state_dict(self) -> dict[str, Any]:
        return {"cursors": list(self.cursors), "tokens": list(self.tokens)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["cursors"]) != len(self.cursors):
            raise BirdieError(
                f"the checkpoint's pipeline read {len(state['cursors'])} data sources; this "
                f"config has {len(self.cursors)}: resume with the same data.sources"
            )
        self.cursors = [int(c) for c in state["cursors"]]
        self.tokens = [int(t) for t in state["tokens"]]
