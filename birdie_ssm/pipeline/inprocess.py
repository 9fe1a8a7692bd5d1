"""The sample pipeline: documents → objective examples (arm drawn from the mixture) → packed rows.

Documents flow through a token buffer: before each example it is topped up to at least the
example's budget with the next documents (joined by paragraph breaks), the drawn objective takes
what it needs from the front, and the rest stays for the next example. So short documents,
whitespace and leftovers are carried over, and empty documents skipped, instead of failing.
The mixture is honoured in *target tokens* (what the loss is averaged over), not in examples:
objectives differ widely in target tokens per example (next-token prediction fills the rest of a
row; selective copying reads hundreds of tokens to produce sixteen), so drawing arms at random
from the mixture realised a very different token share. Each example instead goes to the arm
furthest behind its requested share of the target tokens produced since the mixture was set
(ties broken at random, weighted by the mixture), so the realised share tracks the request.
The pipeline only reads the mixture it is given; its state (cursor, rng, buffer, per-arm token
counts) is small and JSON-serialisable, so a checkpoint can resume it exactly.
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
from birdie_ssm.pipeline.packing import OVERHEAD, Batch, RowBuilder, stack_rows
from birdie_ssm.text.tokenizer import Tokenizer

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


def check_workers(state: dict[str, Any], workers: int) -> None:
    """Refuse pipeline state saved with another number of data workers (it would not resume
    exactly)."""
    saved = state.get("workers", 0)
    if saved != workers:
        raise BirdieError(
            f"the checkpoint's pipeline ran {saved} data workers; "
            f"set data.workers={saved} to resume it exactly"
        )


class Pipeline:
    """Produces packed batches from a document stream under the current mixture.

    Reads documents ``offset, offset + stride, ...`` (worker processes take disjoint shares).
    ``batch_size`` is the global batch. Under multi-host training every host (``process_index``
    of ``process_count``) runs the same stream and keeps its own contiguous block of rows, so
    the global batch, and the pipeline state a checkpoint holds, do not depend on the number of
    hosts: a run trains the same on one host as on several, and resumes on any count.
    """

    def __init__(
        self,
        documents: Callable[[int], str],
        tokenizer: Tokenizer,
        arms: list[Arm],
        *,
        seq_len: int,
        batch_size: int,
        seed: int | list[int],
        mixture: np.ndarray | None = None,
        stride: int = 1,
        offset: int = 0,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        check_arms_fit(arms, seq_len)
        self.rows = host_rows(batch_size, process_index, process_count)
        self.documents, self.tokenizer, self.arms = documents, tokenizer, arms
        self.seq_len, self.batch_size = seq_len, batch_size
        self.stride, self.offset = stride, offset
        self.rng = np.random.default_rng(seed)
        self.cursor = 0
        self.buffer = _EMPTY
        self.min_budgets = [a.objective.min_budget() for a in arms]
        self.joiner = tokenizer.encode("\n\n").astype(np.int32)
        self.mixture = np.zeros(len(arms))
        self.arm_tokens = [0] * len(arms)
        self.set_mixture(np.full(len(arms), 1.0 / len(arms)) if mixture is None else mixture)

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

    def _next_text(self) -> str:
        for _ in range(MAX_BLANK_DOCUMENTS):
            text = self.documents(self.cursor * self.stride + self.offset)
            self.cursor += 1
            if text and not text.isspace():
                return text
        raise BirdieError(f"the corpus gave {MAX_BLANK_DOCUMENTS} empty documents in a row")

    def _refill(self, need: int) -> None:
        """Append documents, separated by paragraph breaks, until the buffer holds ``need`` tokens.

        Documents are joined as text and encoded together: one tokenizer call per pass.
        """
        while len(self.buffer) < need:
            texts, chars = [], 0
            while chars < need - len(self.buffer):  # a token spans at least one character
                texts.append(self._next_text())
                chars += len(texts[-1])
            text = "\n\n".join(texts)
            tokens = self.tokenizer.encode(text).astype(np.int32)
            parts = [self.buffer, self.joiner, tokens] if len(self.buffer) else [tokens]
            self.buffer = np.concatenate(parts)

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
        """This host's rows of the next ``[batch_size, seq_len]`` packed batch."""
        rows = []
        for _ in range(self.batch_size):
            row = RowBuilder(self.seq_len, self.tokenizer.specials)
            self._fill(row)
            rows.append(row)
        return stack_rows(rows[self.rows])

    def close(self) -> None:
        """Release resources (nothing to release in-process)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly (JSON-serialisable)."""
        return {
            "workers": 0,
            "cursor": self.cursor,
            "rng": self.rng.bit_generator.state,
            "buffer": encode_tokens(self.buffer),
            "mixture": self.mixture.tolist(),
            "arm_tokens": list(self.arm_tokens),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()``."""
        check_workers(state, 0)
        self.cursor = int(state["cursor"])
        self.rng.bit_generator.state = state["rng"]
        self.buffer = decode_tokens(state["buffer"])
        self.set_mixture(np.asarray(state["mixture"]))
        # Counts under the saved mixture (a state without them predates token-share tracking).
        self.arm_tokens = [int(c) for c in state.get("arm_tokens") or [0] * len(self.arms)]


def validation_batches(
    documents: Callable[[int], str],
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
    """A fixed held-out set per arm: the same for every run with the same config.

    Each host gets its own rows of every (global) batch, as from ``Pipeline``.
    """
    out = []
    for i in range(len(arms)):
        onehot = np.zeros(len(arms))
        onehot[i] = 1.0
        pipe = Pipeline(
            documents,
            tokenizer,
            arms,
            seq_len=seq_len,
            batch_size=batch_size,
            seed=[seed, i],
            mixture=onehot,
            process_index=process_index,
            process_count=process_count,
        )
        out.append([pipe.next_batch() for _ in range(batches_per_arm)])
    return out
