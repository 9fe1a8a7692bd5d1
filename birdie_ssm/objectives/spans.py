"""Shared helpers of the built-in objectives: length bands, random span layouts, span masking."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from birdie_ssm.errors import check_range
from birdie_ssm.objectives.base import Objective
from birdie_ssm.text.tokenizer import NUM_SENTINELS

Band = tuple[int, int]
MIN_SPAN_PASSAGE = 4  # the shortest passage a span-masking objective takes
MAX_PASSAGE = 1 << 20  # the longest passage a length band may ask for


def parse_band(name: str, value: object, low: int, high: int) -> Band | None:
    """``None``, an int, ``"lo-hi"`` or ``[lo, hi]`` as a (lo, hi) band within [low, high].

    Raises ValueError naming the parameter and the accepted forms and range.
    """
    if value is None:
        return None
    form = f"parameter '{name}' must be an int, 'lo-hi' or [lo, hi] within [{low}, {high}]"
    try:
        if isinstance(value, str):
            lo, _, hi = value.partition("-")
            band = (int(lo), int(hi or lo))
        elif isinstance(value, Sequence) and len(value) == 2:
            band = (int(value[0]), int(value[1]))
        elif isinstance(value, int | np.integer) and not isinstance(value, bool):
            band = (int(value), int(value))
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"{form}, got {value!r}") from None
    if not low <= band[0] <= band[1] <= high:
        raise ValueError(f"{form} with lo <= hi, got {value!r}")
    return band


def draw_length(
    rng: np.random.Generator, band: Band | None, available: int, cap: int, minimum: int
) -> int | None:
    """A passage length: uniform in ``band`` up to ``cap`` (what the budget allows), or as much as
    is available when there is no band. None when ``available`` tokens cannot provide it."""
    if band is None:
        n = min(available, cap)
        return n if n >= minimum else None
    lo, hi = max(band[0], minimum), min(band[1], cap)
    if hi < lo:
        return None
    n = draw_int(rng, lo, hi)
    # Too few tokens: the pipeline appends the next document and asks again.
    return n if available >= n else None


def draw_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (several times cheaper than ``rng.integers`` per call)."""
    return lo + min(int(rng.random() * (hi - lo + 1)), hi - lo)


def partition(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
    """``total`` split into ``parts`` positive integers, uniformly over compositions."""
    if parts == 1:
        return np.array([total])
    cuts = np.sort(rng.choice(total - 1, size=parts - 1, replace=False) + 1)
    return np.diff(cuts, prepend=0, append=total)


def span_counts(n: int, rate: float, mean_span: float) -> tuple[int, int]:
    """(masked tokens, masked spans) for ``n`` >= 2 tokens at ``rate`` with spans of ``mean_span``.

    Every span gets a sentinel of its own, so there are at most ``NUM_SENTINELS`` spans: where a
    passage would need more, its spans grow longer (the mask rate and the length are kept; the
    mean span becomes ``masked / NUM_SENTINELS``, e.g. 8 for 2048 tokens at 0.5 and span 3)."""
    noise = min(max(round(n * rate), 1), n - 1)
    spans = min(max(round(noise / mean_span), 1), noise, n - noise, NUM_SENTINELS)
    return noise, spans


def first_passing(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The smallest ``n`` in [lo, hi] with ``ok(n)`` (``ok`` monotone: False, then True);
    ``hi + 1`` if there is none."""
    while lo <= hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid - 1
        else:
            lo = mid + 1
    return lo


def shortest_passage(rate: float, mean_span: float, clean_runs: int) -> int:
    """The shortest passage with at least ``clean_runs`` unmasked tokens (so it can be laid out
    as that many unmasked runs); the unmasked count never falls as the passage grows."""
    return first_passing(
        MIN_SPAN_PASSAGE,
        MAX_PASSAGE,
        lambda n: n - span_counts(n, rate, mean_span)[0] >= clean_runs,
    )


def span_lengths(
    rng: np.random.Generator, n: int, noise: int, spans: int, min_clean_runs: int = 1
) -> np.ndarray:
    """Run lengths ``[clean_0, noise_0, clean_1, ..., noise_{spans-1}, clean_spans]`` covering
    ``n``: every noise run and every inner clean run is non-empty; the outer clean runs may be
    empty, so a passage may start and end either clean or masked. The four ways to begin and
    end are equally likely among those that leave at least ``min_clean_runs`` (and at most
    ``n - noise``) non-empty clean runs; ``spans`` <= ``n - noise`` always allows one."""
    clean = n - noise
    options = []
    for lead in (0, 1):
        for trail in (0, 1):
            runs = spans - 1 + lead + trail
            if max(1, min_clean_runs) <= runs <= clean:
                options.append((lead, trail, runs))
    if not options:
        raise ValueError(
            f"{n} tokens with {noise} masked in {spans} spans cannot hold {min_clean_runs} "
            "unmasked runs"
        )
    lead, trail, runs = options[int(rng.random() * len(options)) % len(options)]
    lengths = np.zeros(2 * spans + 1, dtype=np.int64)
    lengths[1::2] = partition(rng, noise, spans)
    slots = np.arange(1 - lead, spans + trail) * 2  # the non-empty clean runs
    lengths[slots] = partition(rng, clean, runs)
    return lengths


def fit_passage(budget: int, cost: Callable[[int], int]) -> int:
    """The largest passage length ``n <= budget`` with ``cost(n) <= budget`` (cost grows with n)."""
    lo, hi = 0, budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices ``[starts[0] .. starts[0]+lengths[0]), [starts[1] ..)`` concatenated, vectorised."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


# Odd multipliers for position-dependent hashing of token windows (wrapping uint64 arithmetic).
WEIGHTS = (np.arange(1, 8193, 2, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)


def hash_rows(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of an integer matrix (collisions about 2**-64 per pair)."""
    return rows.astype(np.uint64) @ WEIGHTS[: rows.shape[-1]]


def check_masking(mask_rate: float, mean_span: float) -> None:
    """Validate the span-masking parameters shared by infilling and autoencoding."""
    check_range("mask_rate", mask_rate, 0.01, 0.95)
    check_range("mean_span", mean_span, 1, 4096)


def passage_limits(
    length: object, mask_rate: float, mean_span: float, min_clean_runs: int = 1
) -> tuple[Band | None, int]:
    """(length band, shortest passage) for span masking at these settings: the shortest passage
    leaves ``min_clean_runs`` unmasked tokens. Raises ValueError naming ``length`` when its band
    starts below that."""
    band = parse_band("length", length, MIN_SPAN_PASSAGE, MAX_PASSAGE)
    shortest = shortest_passage(mask_rate, mean_span, min_clean_runs)
    if band is not None and band[0] < shortest:
        raise ValueError(
            f"parameter 'length' must start at or above {shortest} at mask_rate {mask_rate:g} "
            f"(shorter passages leave fewer than {min_clean_runs} unmasked tokens, and the "
            f"shuffle needs {min_clean_runs} unmasked spans), got {length!r}"
        )
    return band, shortest


class SpanMasking(Objective):
    """Base of objectives that mask spans of a passage (config: mask_rate, mean_span, length).

    Subclasses implement ``_cost(n)``, the tokens an example of an ``n``-token passage takes, and
    build their example in ``make`` from the layout ``_draw_spans`` returns.
    """

    min_clean_runs: int = 1  # unmasked runs every layout must have

    def __init__(self, config, specials, paradigm):
        super().__init__(config, specials, paradigm)
        self.band, self.shortest = passage_limits(
            config.length, config.mask_rate, config.mean_span, self.min_clean_runs
        )

    def _cost(self, n: int) -> int:
        raise NotImplementedError

    def _span_counts(self, n: int) -> tuple[int, int]:
        return span_counts(n, self.config.mask_rate, self.config.mean_span)

    def min_budget(self) -> int:
        return self._cost(max(self.band[0] if self.band else 0, self.shortest)) + 1

    def _draw_spans(
        self, tokens: np.ndarray, rng: np.random.Generator, budget: int
    ) -> tuple[int, int, int, np.ndarray] | None:
        """``(n, noise, spans, lengths)``: a passage length whose example fits ``budget``, its
        masked tokens and spans, and the run lengths ``[clean_0, noise_0, ..., clean_spans]``
        (see ``span_lengths``); or None."""
        cap = fit_passage(budget, self._cost)
        n = draw_length(rng, self.band, len(tokens), cap, self.shortest)
        if n is None:
            return None
        noise, spans = self._span_counts(n)
        return n, noise, spans, span_lengths(rng, n, noise, spans, self.min_clean_runs)
