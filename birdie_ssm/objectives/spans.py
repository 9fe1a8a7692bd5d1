"""Shared helpers of the built-in objectives: length bands, random span layouts, span masking."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from birdie_ssm.objectives.base import Objective, check_range

Band = tuple[int, int]
MIN_SPAN_PASSAGE = 4  # the shortest passage a span-masking objective takes


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
    """(masked tokens, masked spans) for ``n`` >= 2 tokens at ``rate`` with spans of ``mean_span``."""
    noise = min(max(round(n * rate), 1), n - 1)
    spans = min(max(round(noise / mean_span), 1), noise, n - noise)
    return noise, spans


def span_lengths(rng: np.random.Generator, n: int, noise: int, spans: int) -> np.ndarray:
    """Alternating run lengths ``[clean_0, noise_0, clean_1, noise_1, ...]`` covering ``n``."""
    lengths = np.empty(2 * spans, dtype=np.int64)
    lengths[0::2] = partition(rng, n - noise, spans)
    lengths[1::2] = partition(rng, noise, spans)
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


class SpanMasking(Objective):
    """Base of objectives that mask spans of a passage (config: mask_rate, mean_span, length).

    Subclasses implement ``_cost(n)``, the tokens an example of an ``n``-token passage takes, and
    build their example in ``make`` from the layout ``_draw_spans`` returns.
    """

    def __init__(self, config, specials, paradigm):
        super().__init__(config, specials, paradigm)
        self.band = parse_band("length", config.length, MIN_SPAN_PASSAGE, 1 << 20)

    def _cost(self, n: int) -> int:
        raise NotImplementedError

    def _span_counts(self, n: int) -> tuple[int, int]:
        return span_counts(n, self.config.mask_rate, self.config.mean_span)

    def min_budget(self) -> int:
        return self._cost(self.band[0] if self.band else MIN_SPAN_PASSAGE) + 1

    def _draw_spans(
        self, tokens: np.ndarray, rng: np.random.Generator, budget: int
    ) -> tuple[int, int, int, np.ndarray] | None:
        """``(n, noise, spans, lengths)``: a passage length whose example fits ``budget``, its
        masked tokens and spans, and the run lengths ``[clean_0, noise_0, ...]``; or None."""
        n = draw_length(
            rng, self.band, len(tokens), fit_passage(budget, self._cost), MIN_SPAN_PASSAGE
        )
        if n is None:
            return None
        noise, spans = self._span_counts(n)
        return n, noise, spans, span_lengths(rng, n, noise, spans)
