"""Document sources as text: the synthetic corpus, the built-in prose (``text/prose.py``), or
``data.sources`` (``SourceSet``: files and datasets, read by ``text/sources.py``; training reads
them as tokens through the pipeline's token cache).

The synthetic and prose sources are indexable by a cursor that never runs out, split into a
training stream and a disjoint held-out validation stream.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from birdie_ssm.config import DataConfig, SourceConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.text.prose import prose_documents
from birdie_ssm.text.sources import has_validation, text_batches
from birdie_ssm.text.synthetic import synthetic_document
from birdie_ssm.text.tokenizer import Tokenizer

# The synthetic validation stream starts far beyond anything training will read.
_SYNTHETIC_VAL_OFFSET = 1 << 40
_VAL_EVERY = 50
HELD_OUT_TEXTS = 512  # held-out documents evaluation may cut passages from, per source
MIN_DOCUMENTS = 2  # one to train on, one held out


class DocumentSource(Protocol):
    """Held-out documents by index (what evaluation reads). The synthetic and prose sources also
    give training documents by cursor (``train``); a ``SourceSet`` is trained on through the
    token cache."""

    def val(self, index: int) -> str: ...


class SyntheticSource:
    """The seeded synthetic corpus; validation documents come from a far-away index range."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def train(self, cursor: int) -> str:
        return synthetic_document(self.seed, cursor)

    def val(self, index: int) -> str:
        return synthetic_document(self.seed, _SYNTHETIC_VAL_OFFSET + index)


def held_out_indices(n: int) -> list[int]:
    """Which of ``n`` documents are held out for validation: every 50th, and at least the last
    one, so that training and validation never share a document."""
    return list(range(_VAL_EVERY - 1, n, _VAL_EVERY)) or ([n - 1] if n else [])


class FileSource:
    """Documents from local files; every 50th document (at least one) is held out for
    validation, and never trained on."""

    def __init__(self, texts: list[str], shuffle_seed: int | None = None) -> None:
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise BirdieError("the corpus holds no non-empty documents")
        if len(texts) < MIN_DOCUMENTS:
            raise BirdieError(
                f"the corpus holds {len(texts)} non-empty document; at least {MIN_DOCUMENTS} are "
                "needed (one is held out for validation, disjoint from training)"
            )
        held_out = set(held_out_indices(len(texts)))
        self._val = [texts[i] for i in sorted(held_out)]
        self._train = [t for i, t in enumerate(texts) if i not in held_out]
        if shuffle_seed is not None:  # the held-out set stays the same whatever the seed
            order = np.random.default_rng(shuffle_seed).permutation(len(self._train))
            self._train = [self._train[i] for i in order]

    def train(self, cursor: int) -> str:
        return self._train[cursor % len(self._train)]

    def val(self, index: int) -> str:
        return self._val[index % len(self._val)]

    @property
    def held_out(self) -> list[str]:
        """The held-out documents, once each (``val`` wraps around them)."""
        return list(self._val)

    @property
    def train_texts(self) -> list[str]:
        """The training documents, in their (shuffled) order."""
        return self._train


_SPACE = re.compile(r"\s+")
_LEADING_SPACE = re.compile(r"\s*")


def _cut(text: str, tokenizer: Tokenizer, n: int) -> tuple[list[str], str]:
    """``text`` cut at whitespace into consecutive stretches of at least ``n`` tokens each (as
    short as that allows), and the rest, too short for another."""
    ends = [m.start() for m in _SPACE.finditer(text)] + [len(text)]  # where a stretch may end
    pieces: list[str] = []
    start = _LEADING_SPACE.match(text).end()

    def enough(i: int) -> bool:
        return len(tokenizer.encode(text[start : ends[i]])) >= n

    while start < len(text):
        lo = bisect.bisect_right(ends, start)
        # Widen the window until it holds n tokens (never encoding far past what is needed),
        # then find the shortest stretch by bisection.
        width, hi = n, lo
        while True:
            hi = min(bisect.bisect_left(ends, start + width), len(ends) - 1)
            if enough(hi) or hi == len(ends) - 1:
                break
            width *= 2
        if not enough(hi):
            break
        end = ends[bisect.bisect_left(range(lo, hi + 1), True, key=enough) + lo]
        pieces.append(text[start:end])
        start = _LEADING_SPACE.match(text, end).end()
    return pieces, text[start:]


def distinct_passages(texts: Sequence[str], tokenizer: Tokenizer, n: int) -> list[str]:
    """Disjoint stretches of ``texts``, each encoding to at least ``n`` tokens: several from a
    long text, short texts (and long ones' tails) joined. Ordered round-robin over the texts,
    so that the first ones come from as many different texts as there are."""
    per_text: list[list[str]] = []
    carry = ""
    for text in texts:
        pieces, rest = _cut(text, tokenizer, n)
        if rest.strip():
            carry = f"{carry}\n{rest.strip()}" if carry else rest.strip()
            if len(tokenizer.encode(carry)) >= n:
                pieces.append(carry)
                carry = ""
        per_text.append(pieces)
    rounds = max(map(len, per_text), default=0)
    return [pieces[k] for k in range(rounds) for pieces in per_text if k < len(pieces)]


class _Passages:
    """Passage ``k`` of a finite pool (indices past the pool wrap: see ``held_out_passages``)."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def __call__(self, index: int) -> str:
        return self.pieces[index % len(self.pieces)]


def held_out_passages(
    source: DocumentSource, tokenizer: Tokenizer, n: int
) -> tuple[Callable[[int], str], int | None]:
    """Held-out text for a task that cuts ``n``-token passages out of documents: document
    ``k`` is a distinct passage of at least ``n`` tokens for ``k`` below the count returned
    (None: unbounded, as the synthetic corpus never repeats). A file corpus's held-out
    documents are cut into passages rather than read from the start and wrapped around."""
    if not isinstance(source, FileSource | SourceSet):
        return source.val, None
    pieces = distinct_passages(source.held_out, tokenizer, n)
    return _Passages(pieces), len(pieces)


class SourceSet:
    """The ``data.sources`` of a file corpus (read through the token cache for training); its
    held-out text, for evaluation, is read on first use: at most ``HELD_OUT_TEXTS`` documents."""

    def __init__(self, specs: list[SourceConfig], seed: int) -> None:
        self.specs, self.seed = specs, seed
        self._held_out: list[str] | None = None

    @property
    def held_out(self) -> list[str]:
        """Held-out documents of every source, interleaved (the same the token corpus holds
        out: the validation part, else every 50th document, at least the last)."""
        if self._held_out is None:
            per_source = [_held_out_texts(spec) for spec in self.specs]
            rounds = max(map(len, per_source))
            self._held_out = [p[k] for k in range(rounds) for p in per_source if k < len(p)]
        return self._held_out

    def val(self, index: int) -> str:
        return self.held_out[index % len(self.held_out)]


def _held_out_texts(spec: SourceConfig) -> list[str]:
    texts: list[str] = []
    if has_validation(spec):
        for batch in text_batches(spec, "val"):
            texts += batch[: HELD_OUT_TEXTS - len(texts)]
            if len(texts) >= HELD_OUT_TEXTS:
                break
        return texts
    last, n = "", 0
    for batch in text_batches(spec, "train"):
        for text in batch:
            n += 1
            if n % _VAL_EVERY == 0:
                texts.append(text)
            last = text
        if len(texts) >= HELD_OUT_TEXTS:
            return texts[:HELD_OUT_TEXTS]
    return texts or [last]


def make_source(config: DataConfig) -> DocumentSource:
    """The document source a data config describes."""
    if config.corpus == "synthetic":
        return SyntheticSource(config.seed)
    if config.corpus == "prose":
        return FileSource(list(prose_documents()), shuffle_seed=config.seed)
    return SourceSet(config.corpus_sources(), config.seed)
