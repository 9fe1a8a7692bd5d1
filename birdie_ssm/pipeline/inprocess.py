"""The sample pipeline: documents → objective examples (arm drawn from the mixture) → packed rows.

Documents flow through a token buffer: before each example it is topped up to at least the
example's budget with the next documents (joined by the tokenizer's own end- and
begin-of-document tokens, or a paragraph break where it has none), the drawn objective takes
what it needs from the front, and the rest stays for the next example. So short documents,
whitespace and leftovers are carried over, and empty documents skipped, instead of failing.
The mixture is honoured in *target tokens* (what the loss is averaged over), not in examples:
objectives differ widely in target tokens per example (next-token prediction fills the rest of a
row; selective copying reads hundreds of tokens to produce sixteen), so drawing arms at random
from the mixture realised a very different token share. Each example instead goes to the arm
furthest behind its requested share of the target tokens produced since the mixture was set
(ties broken at random, weighted by the mixture), so the realised share tracks the request.
The pipeline only reads the mixture it is given; its state (per stream: source cursors, rng,
buffer, per-arm token counts) is small and JSON-serialisable, so a checkpoint resumes it exactly.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives.arms import Arm
from birdie_ssm.pipeline.documents import SourceMixer, TokenCorpus, as_corpus
from birdie_ssm.pipeline.packing import OVERHEAD, Batch, RowBuilder, stack_rows
from birdie_ssm.text.tokenizer import Tokenizer, document_joiner

MIN_BUDGET = 16  # below this a row is closed: too little room for a useful example
MAX_FAILURES = 200  # consecutive empty rows no example could be made for
MAX_BLANK_DOCUMENTS = 10_000  # consecutive empty or whitespace-only documents
_EMPTY = np.zeros(0, dtype=np.int32)


def check_arms_fit(arms: list[Arm], seq_len: int) -> None:
    """Raise BirdieError naming any arm that could never fit in a row of ``seq_len`` tokens."""
    room = seq_len - OVERHEAD
    too_big = [
        f"'{a.name}' needs {a.objective.min_budget()}"
        for a in arms
        if a.objective.min_budget() > room
    ]
    if too_big:
        raise BirdieError(
            f"data.seq_len {seq_len} leaves {room} tokens per example, but arm "
            f"{', '.join(too_big)}; raise data.seq_len or lower the objective's lengths"
        )


def encode_tokens(tokens: np.ndarray) -> str:
    """Token ids as compact base64 text (for JSON state)."""
    return base64.b64encode(np.ascontiguousarray(tokens, dtype="<i4").tobytes()).decode("ascii")


def decode_tokens(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i4").astype(np.int32)


def check_mixture(mixture: np.ndarray, n_arms: int) -> np.ndarray:
    """``mixture`` as float64 probabilities over ``n_arms`` arms, or a ValueError."""
    mixture = np.asarray(mixture, dtype=np.float64)
    if mixture.shape != (n_arms,) or not np.isclose(mixture.sum(), 1.0):
        raise ValueError(f"a mixture over {n_arms} arms must sum to 1, got {mixture}")
    return mixture


def host_rows(batch_size: int, process_index: int, process_count: int) -> slice:
    """The rows of a global batch that host ``process_index`` of ``process_count`` feeds."""
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process {process_index} of {process_count} does not exist")
    if batch_size % process_count:
        raise BirdieError(
            f"data.batch_size {batch_size} must be a multiple of the {process_count} hosts"
        )
    n = batch_size // process_count
    return slice(process_index * n, (process_index + 1) * n)


STATE_VERSION = 2  # streams and sources; earlier states tracked one cursor per worker


class Stream:
    """One batch stream: documents from its ``SourceMixer`` -> objective examples -> rows.

    Its state (source cursors and token counts, rng, token buffer, per-arm target-token counts)
    is small and JSON-serialisable, so a checkpoint resumes it exactly.
    """

    def __init__(
        self,
        documents: SourceMixer,
        tokenizer: Tokenizer,
        arms: list[Arm],
        *,
        seq_len: int,
        rows: int,
        seed: int | list[int],
        mixture: np.ndarray,
    ) -> None:
        self.documents, self.tokenizer, self.arms = documents, tokenizer, arms
        self.seq_len, self.rows = seq_len, rows
        self.rng = np.random.default_rng(seed)
        self.buffer = _EMPTY
        self.min_budgets = [a.objective.min_budget() for a in arms]
        self.joiner = document_joiner(tokenizer)
        self.mixture = np.zeros(len(arms))
        self.arm_tokens = [0] * len(arms)
        self.set_mixture(mixture)

    def set_mixture(self, mixture: np.ndarray) -> None:
        """Use ``mixture`` (probabilities over arms) for every example from now on.

        A different mixture starts the per-arm target-token counts afresh; the same one keeps them.
        """
        mixture = check_mixture(mixture, len(self.arms))
        if not np.array_equal(mixture, self.mixture):
            self.arm_tokens = [0] * len(self.arms)
        self.mixture = mixture
        self.shares = mixture.tolist()  # the per-example draw works on Python floats

    def _draw(self, budget: int) -> int:
        """The arm for the next example: the one furthest behind its share of target tokens.

        Ties (all counts zero, after a mixture change) are broken by one uniform draw weighted
        by the mixture, so a one-arm mixture consumes the rng exactly as a random draw did. When
        that arm needs more than ``budget``, the arm furthest behind among those that fit takes
        its place if it too is behind its share; otherwise the drawn arm is returned (and the
        row closes).

        Plain Python on a handful of floats: this runs once per example, and arms with one- or
        two-token targets are drawn dozens of times per row, where NumPy's per-call cost on
        six-element arrays dominated. (Same float64 arithmetic as the vectorised form.)
        """
        u = self.rng.random()  # one draw per example, whatever the counts
        total = sum(self.arm_tokens)
        deficit = [
            share * total - count if share > 0 else -math.inf
            for share, count in zip(self.shares, self.arm_tokens, strict=True)
        ]
        top = max(deficit) - 1e-9
        tied = [s if d >= top else 0.0 for s, d in zip(self.shares, deficit, strict=True)]
        cdf = list(itertools.accumulate(tied))
        arm = min(bisect.bisect_right(cdf, u * cdf[-1]), len(cdf) - 1)
        if self.min_budgets[arm] <= budget:
            return arm
        fits = [
            d if m <= budget else -math.inf for d, m in zip(deficit, self.min_budgets, strict=True)
        ]
        other = fits.index(max(fits))
        return other if fits[other] > 0 else arm

    def _next_document(self) -> np.ndarray:
        for _ in range(MAX_BLANK_DOCUMENTS):
            tokens = self.documents.next()
            if len(tokens):
                return tokens
        raise BirdieError(f"the corpus gave {MAX_BLANK_DOCUMENTS} empty documents in a row")

    def _refill(self, need: int) -> None:
        """Append documents, joined by the document separator, until the buffer holds ``need``
        tokens."""
        parts = [self.buffer] if len(self.buffer) else []
        have = len(self.buffer)
        while have < need:
            if parts:
                parts.append(self.joiner)
            parts.append(self._next_document())
            have += len(parts[-1]) + (len(self.joiner) if len(parts) > 1 else 0)
        if len(parts) > 1 or not len(self.buffer):
            self.buffer = np.concatenate(parts).astype(np.int32, copy=False)

    def _fill(self, row: RowBuilder) -> None:
        failures = 0
        while row.budget() >= MIN_BUDGET:
            budget = row.budget()
            arm = self._draw(budget)
            objective = self.arms[arm].objective
            out = None
            if budget >= self.min_budgets[arm]:
                # Objectives see a stream at least one budget long: documents run on into the
                # next, so short documents and leftovers are carried over, never wasted.
                self._refill(budget)
                out = objective.sample(self.buffer, self.rng, budget)
            if out is not None:
                example, self.buffer = out
                row.add(example, arm)
                self.arm_tokens[arm] += len(example.target_ids) + 1  # the loss covers eod too
                continue
            if row.used:  # the drawn objective does not fit what is left: close the row
                return
            # Enough tokens, an empty row, and still no example (e.g. text without the
            # structure the objective looks for): drop these tokens and try again.
            self.buffer = self.buffer[budget:]
            failures += 1
            if failures >= MAX_FAILURES:
                raise BirdieError(
                    f"no example could be made for {failures} rows of {self.seq_len} tokens in a "
                    f"row (last arm tried: '{self.arms[arm].name}'); check the corpus and the "
                    "objectives' parameters"
                )

    def next_batch(self) -> Batch:
        """The next ``[rows, seq_len]`` packed batch of this stream."""
        rows = []
        for _ in range(self.rows):
            row = RowBuilder(self.seq_len, self.tokenizer.specials)
            self._fill(row)
            rows.append(row)
        return stack_rows(rows)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly (JSON-serialisable)."""
        return {
            "documents": self.documents.state_dict(),
            "rng": self.rng.bit_generator.state,
            "buffer": encode_tokens(self.buffer),
            "mixture": self.mixture.tolist(),
            "arm_tokens": list(self.arm_tokens),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()``."""
        self.documents.load_state_dict(state["documents"])
        self.rng.bit_generator.state = state["rng"]
        self.buffer = decode_tokens(state["buffer"])
        self.set_mixture(np.asarray(state["mixture"]))
        self.arm_tokens = [int(c) for c in state["arm_tokens"]]


def check_state(state: dict[str, Any]) -> None:
    """Refuse pipeline state this version cannot continue exactly."""
    if state.get("version") != STATE_VERSION:
        raise BirdieError(
            "the checkpoint's data pipeline state comes from an earlier version of birdie-ssm "
            "(one stream per data worker); it cannot be resumed exactly: start the run afresh"
        )


class Pipeline:
    """Produces this host's packed rows of each global batch under the current mixture.

    ``corpus``: a ``TokenCorpus``, or a function from index to document text (one unbounded
    stream).
    Batch ``b`` comes from stream ``b mod streams``; each stream reads its own documents of
    this host's share (``SourceMixer``). ``batch_size`` is the global batch: host
    ``process_index`` of ``process_count`` packs only its ``batch_size / process_count`` rows,
    from its own documents. The streams, not the data workers, define the batches, so the same
    run gives the same batches with any number of workers (``WorkerPool``), and resumes on any.
    """

    def __init__(
        self,
        corpus: TokenCorpus | Callable[[int], str],
        tokenizer: Tokenizer,
        arms: list[Arm],
        *,
        seq_len: int,
        batch_size: int,
        seed: int | list[int],
        mixture: np.ndarray | None = None,
        streams: int = 1,
        process_index: int = 0,
        process_count: int = 1,
        part: str = "train",
    ) -> None:
        check_arms_fit(arms, seq_len)
        rows = host_rows(batch_size, process_index, process_count)
        self.arms = arms
        self.corpus = corpus = as_corpus(corpus, tokenizer)
        mixture = np.full(len(arms), 1.0 / len(arms)) if mixture is None else mixture
        self.mixture = check_mixture(mixture, len(arms))
        hosts = dict(process_index=process_index, process_count=process_count)
        self.streams = [
            Stream(
                SourceMixer(corpus, stream=s, streams=streams, part=part, **hosts),
                tokenizer,
                arms,
                seq_len=seq_len,
                rows=rows.stop - rows.start,
                seed=[*np.atleast_1d(seed).tolist(), process_index, s],
                mixture=self.mixture,
            )
            for s in range(streams)
        ]
        self.taken = 0

    def batch(self, index: int) -> Batch:
        """Batch ``index`` (its stream's next batch: batches of a stream come in order)."""
        return self.streams[index % len(self.streams)].next_batch()

    def next_batch(self) -> Batch:
        """This host's rows of the next global batch."""
        batch = self.batch(self.taken)
        self.taken += 1
        return batch

    def set_mixture(self, mixture: np.ndarray) -> None:
        """Use ``mixture`` for every example from now on (see ``Stream.set_mixture``)."""
        self.mixture = check_mixture(mixture, len(self.arms))
        for stream in self.streams:
            stream.set_mixture(self.mixture)

    def source_tokens(self) -> dict[str, int]:
        """Tokens read from each corpus source so far, by name (the corpus mixture realised)."""
        return source_totals(self.corpus.names, [s.state_dict() for s in self.streams])

    def close(self) -> None:
        """Release resources (nothing to release in-process)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (JSON-serialisable; no worker count in it)."""
        return {
            "version": STATE_VERSION,
            "taken": self.taken,
            "streams": [s.state_dict() for s in self.streams],
            "mixture": self.mixture.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()`` (of a pipeline with the same streams)."""
        check_state(state)
        check_streams(state, len(self.streams))
        self.taken = int(state["taken"])
        for stream, saved in zip(self.streams, state["streams"], strict=True):
            stream.load_state_dict(saved)
        self.mixture = np.asarray(state["mixture"], dtype=np.float64)


def check_streams(state: dict[str, Any], streams: int) -> None:
    """Refuse state of another stream count (its batches would differ)."""
    if len(state["streams"]) != streams:
        raise BirdieError(
            f"the checkpoint's pipeline ran {len(state['streams'])} data streams; "
            f"set data.streams={len(state['streams'])} to resume it exactly"
        )


def source_totals(names: list[str], states: list[dict[str, Any]]) -> dict[str, int]:
    """Tokens read per source over streams' states."""
    totals = [sum(s["documents"]["tokens"][k] for s in states) for k in range(len(names))]
    return dict(zip(names, totals, strict=True))


def validation_batches(
    corpus: TokenCorpus | Callable[[int], str],
    tokenizer: Tokenizer,
    arms: list[Arm],
    *,
    seq_len: int,
    batch_size: int,
    batches_per_arm: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> list[list[Batch]]:
    """A fixed held-out set per arm, from the corpus's validation documents: the same for every
    run with the same config. Each host gets its own rows of every global batch."""
    out = []
    for i in range(len(arms)):
        onehot = np.zeros(len(arms))
        onehot[i] = 1.0
        pipe = Pipeline(
            corpus,
            tokenizer,
            arms,
            seq_len=seq_len,
            batch_size=batch_size,
            seed=[seed, i],
            mixture=onehot,
            part="val",
            process_index=process_index,
            process_count=process_count,
        )
        out.append([pipe.next_batch() for _ in range(batches_per_arm)])
    return out
