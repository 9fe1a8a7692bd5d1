"""Issue 12 regressions: span layouts, sentinel numbering, shuffling, delimiters, budgets."""

import numpy as np
import pytest

from birdie_ssm.config import ObjectiveEntry
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives import expand_arms, get_objective
from birdie_ssm.objectives.base import build_config
from birdie_ssm.pipeline.inprocess import check_arms_fit
from birdie_ssm.text.tokenizer import NUM_SENTINELS, SpecialTokens

SPECIALS = SpecialTokens(base_size=100_000)
SENT = SPECIALS.sentinel_base
DISTINCT = np.arange(10_000, dtype=np.int32)  # every token id once: order is visible


def objective(name, **params):
    cls = get_objective(name)
    return cls(build_config(cls, params), SPECIALS, SPECIALS.paradigm(0))


def is_sentinel(x):
    return (x >= SENT) & (x < SENT + NUM_SENTINELS)


def examples(name, budgets, tokens=DISTINCT, **params):
    """(input, target) from ``make`` for each budget, seeded by its index."""
    made = objective(name, **params)
    out = []
    for seed, budget in enumerate(budgets):
        example = made.make(tokens, np.random.default_rng(seed), int(budget))
        if example is not None:
            out.append(example[:2])
    return out


@pytest.mark.parametrize(("rate", "span"), [(0.5, 3), (0.5, 1), (0.95, 1), (0.15, 3)])
@pytest.mark.parametrize("name", ["infilling", "autoencoding"])
def test_sentinels_are_numbered_once_each_in_long_passages(name, rate, span):
    """At 2048 tokens, mask 0.5 and span 3 a passage would need 341 spans: there are 128
    sentinels, so the spans are capped (longer), never numbered twice; mask rate kept."""
    made = examples(name, [2047] * 30, mask_rate=rate, mean_span=span)
    assert len(made) == 30
    for inputs, target in made:
        sentinels = inputs[is_sentinel(inputs)]
        assert np.array_equal(sentinels, SENT + np.arange(len(sentinels)))
        if name == "autoencoding":  # the target is the passage: the mask rate is kept
            masked = len(target) - (len(inputs) - len(sentinels))
            assert abs(masked / len(target) - rate) < 0.01


def test_a_sentinel_index_past_the_block_is_refused():
    assert SPECIALS.sentinel(NUM_SENTINELS - 1) == SENT + NUM_SENTINELS - 1
    with pytest.raises(ValueError, match=f"outside \\[0, {NUM_SENTINELS}\\)"):
        SPECIALS.sentinel(np.arange(NUM_SENTINELS + 1))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("infilling", {}),
        ("infilling", {"mask_rate": 0.5, "mean_span": 8, "length": "128-256"}),
        ("autoencoding", {}),
        ("autoencoding", {"shuffle": True, "mask_rate": 0.15, "mean_span": 3}),
    ],
)
def test_layouts_start_and_end_masked_or_clean_at_random(name, params):
    """The first and last runs are drawn: a model cannot learn where masked spans sit."""
    made = examples(name, np.full(400, 300), **params)
    starts = np.mean([is_sentinel(inputs[0]) for inputs, _ in made])
    ends = np.mean([is_sentinel(inputs[-1]) for inputs, _ in made])
    assert 0.3 < starts < 0.7 and 0.3 < ends < 0.7, (starts, ends)


def test_shuffled_autoencoding_always_shuffles_short_passages():
    """Below ~1.5 * mean_span / mask_rate tokens there is one masked span; a shuffled passage
    is still laid out as two clean spans or more, and never left in order."""
    budgets = np.random.default_rng(0).integers(12, 600, 300)
    made = examples("autoencoding", budgets, mask_rate=0.15, mean_span=32, shuffle=True)
    assert len(made) >= 290
    for inputs, _ in made:
        clean = inputs[~is_sentinel(inputs)]
        pieces = np.split(inputs, np.flatnonzero(is_sentinel(inputs)))
        assert sum(np.any(~is_sentinel(p)) for p in pieces) >= 2  # two clean spans or more
        assert not np.all(np.diff(clean) > 0)  # distinct increasing ids: out of order


@pytest.mark.parametrize(("rate", "shortest"), [(0.85, 10), (0.95, 30), (0.15, 4)])
def test_a_length_too_short_to_shuffle_is_refused(rate, shortest):
    made = objective("autoencoding", mask_rate=rate, shuffle=True)
    assert made.min_budget() >= made._cost(shortest) + 1
    # The shortest accepted passage is used; one shorter never is.
    assert made.make(DISTINCT, np.random.default_rng(0), made._cost(shortest)) is not None
    assert made.make(DISTINCT, np.random.default_rng(0), made._cost(shortest - 1)) is None
    if shortest > 4:
        with pytest.raises(BirdieError, match=f"'length' must start at or above {shortest}"):
            objective("autoencoding", mask_rate=rate, shuffle=True, length=f"4-{shortest}")
        objective("autoencoding", mask_rate=rate, shuffle=True, length=f"{shortest}-64")


def test_selective_copying_spans_have_the_drawn_length():
    """With one-token delimiters on letters, an end delimiter often occurs inside the span:
    such delimiters are redrawn, so no span comes out shorter than span_length allows."""
    letters = np.random.default_rng(1).integers(97, 123, 20_000).astype(np.int32)
    made = objective(
        "selective_copying", delimiter_length=1, span_length="4-32", context_length="384-768"
    )
    lengths = []
    for seed in range(200):
        example = made.make(letters, np.random.default_rng(seed), 2047)
        if example is None:
            continue
        target = example[1][:-1]
        pieces = np.split(target, np.flatnonzero(target == SENT + 2))
        lengths += [len(pieces[0])] + [len(p) - 1 for p in pieces[1:]]
    assert len(lengths) > 300 and min(lengths) >= 4 and max(lengths) <= 32


@pytest.mark.parametrize("name", ["next_token", "prefix_lm"])
@pytest.mark.parametrize("min_length", [2, 8, 100, 1000])
def test_min_budget_is_the_true_minimum_for_text_objectives(name, min_length):
    made = objective(name, min_length=min_length)
    budget = made.min_budget()
    rng = np.random.default_rng(0)
    assert made.sample(DISTINCT, rng, budget) is not None
    assert made.sample(DISTINCT, rng, budget - 1) is None


def test_a_min_length_beyond_the_row_fails_the_fit_check():
    arms = expand_arms([ObjectiveEntry(name="next_token", params={"min_length": 300})], SPECIALS)
    with pytest.raises(BirdieError, match="'next_token' needs 301"):
        check_arms_fit(arms, 256)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("next_token", {}),
        ("prefix_lm", {"min_length": 40}),
        ("infilling", {"length": "64-128"}),
        ("autoencoding", {"shuffle": True, "mask_rate": 0.85}),
        ("copying", {}),
        ("deshuffling", {}),
    ],
)
def test_min_budget_is_never_too_low(name, params):
    """Below min_budget no example is ever made; at it, one can be."""
    made = objective(name, **params)
    budget = made.min_budget()
    below = [made.sample(DISTINCT, np.random.default_rng(s), budget - 1) for s in range(20)]
    at = [made.sample(DISTINCT, np.random.default_rng(s), budget) for s in range(20)]
    assert all(out is None for out in below) and any(out is not None for out in at)
