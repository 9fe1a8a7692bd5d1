"""Property tests: every built-in objective's target can be rebuilt from what it claims."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.objectives import get_objective
from birdie_ssm.objectives.base import build_config
from birdie_ssm.text.tokenizer import NUM_SENTINELS, SpecialTokens

SPECIALS = SpecialTokens(base_size=100_000)
PARADIGM = SPECIALS.paradigm(3)
SENT = SPECIALS.sentinel_base
PROPS = settings(max_examples=25, deadline=None)


def make(name, params, tokens, seed, budget):
    cls = get_objective(name)
    objective = cls(build_config(cls, params), SPECIALS, PARADIGM)
    out = objective.sample(tokens, np.random.default_rng(seed), budget)
    again = objective.sample(tokens, np.random.default_rng(seed), budget)
    assert (out is None) == (again is None)
    if out is None:
        return None
    example, rest = out
    assert np.array_equal(example.input_ids, again[0].input_ids)  # same rng, same example
    assert np.array_equal(example.target_ids, again[0].target_ids)
    assert len(example) <= budget
    inputs = example.input_ids
    assert (inputs == PARADIGM).sum() == 1 and PARADIGM in (inputs[0], inputs[-1])
    assert np.array_equal(tokens[len(tokens) - len(rest) :], rest)  # unused = the tail
    used = tokens[: len(tokens) - len(rest)]
    return inputs[inputs != PARADIGM], example.target_ids, used


def documents(unique: bool = True):
    """Token documents: all-distinct ids, or drawn from a tiny alphabet (many repeats)."""

    def build(n, seed, alphabet):
        rng = np.random.default_rng(seed)
        if alphabet == 0:
            return rng.permutation(SPECIALS.base_size)[:n].astype(np.int32)
        return rng.integers(0, alphabet, n).astype(np.int32)

    alphabets = st.just(0) if unique else st.sampled_from([0, 2, 5])
    return st.builds(build, st.integers(0, 2500), st.integers(0, 2**31), alphabets)


def is_sentinel(x):
    return (x >= SENT) & (x < SENT + NUM_SENTINELS)


@PROPS
@given(documents(), st.integers(0, 999), st.integers(2, 2100), st.integers(0, 16))
def test_next_token_and_prefix_lm(tokens, seed, budget, max_prompt):
    for name, params in [("next_token", {"max_prompt": max_prompt}), ("prefix_lm", {})]:
        made = make(name, params, tokens, seed, budget)
        if made:
            inputs, target, used = made
            assert np.array_equal(np.concatenate([inputs, target]), used)
            assert len(target) >= 1


@PROPS
@given(documents(), st.integers(0, 999), st.integers(2, 2100), st.sampled_from([None, "8-64"]))
def test_copying(tokens, seed, budget, length):
    made = make("copying", {"length": length}, tokens, seed, budget)
    if made:
        inputs, target, used = made
        assert np.array_equal(inputs, used) and np.array_equal(target, used)
        assert length is None or 8 <= len(target) <= 64


@PROPS
@given(documents(), st.integers(0, 999), st.integers(2, 2100), st.sampled_from([0.5, 1.0, 0.05]))
def test_deshuffling(tokens, seed, budget, rate):
    made = make("deshuffling", {"shuffle_rate": rate}, tokens, seed, budget)
    if made:
        inputs, target, used = made
        assert np.array_equal(target, used)  # the target is the unshuffled original
        assert np.array_equal(np.sort(inputs), np.sort(target))
        assert not np.array_equal(inputs, target)  # distinct tokens: a shuffle shows
        moved = (inputs != target).sum()
        assert moved <= max(2, round(rate * len(target)))


def split_on(seq, is_marker):
    """Pieces between markers: [(marker, piece after it)] with the piece before the first."""
    cut = np.flatnonzero(is_marker(seq))
    head = seq[: cut[0]] if len(cut) else seq
    bounds = np.append(cut, len(seq))
    return head, [(seq[a], seq[a + 1 : b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def numbered(sentinels):
    """Sentinels numbered 0, 1, 2, ... in order: each once, never wrapped."""
    return np.array_equal(sentinels, SENT + np.arange(len(sentinels))) and len(sentinels) <= (
        NUM_SENTINELS
    )


@PROPS
@given(
    documents(),
    st.integers(0, 999),
    st.integers(2, 4200),
    st.sampled_from([0.05, 0.15, 0.5, 0.95]),
    st.sampled_from([1, 3, 8, 32, 64]),
    st.sampled_from([None, "16-128", "1024-4000"]),
)
def test_infilling(tokens, seed, budget, rate, span, length):
    params = {"mask_rate": rate, "mean_span": span, "length": length}
    made = make("infilling", params, tokens, seed, budget)
    if not made:
        return
    inputs, target, used = made
    head, in_groups = split_on(inputs, is_sentinel)
    t_head, t_groups = split_on(target, is_sentinel)
    assert len(t_head) == 0 and len(in_groups) == len(t_groups) >= 1
    assert numbered(inputs[is_sentinel(inputs)]) and numbered(target[is_sentinel(target)])
    # Putting each span back at its sentinel gives the original passage.
    rebuilt = [head]
    for (s_in, clean), (s_t, masked) in zip(in_groups, t_groups, strict=True):
        assert s_in == s_t and len(masked) >= 1
        rebuilt += [masked, clean]
    assert np.array_equal(np.concatenate(rebuilt), used)
    # Only the first and the last clean run may be empty (the passage starts or ends masked).
    assert all(len(clean) >= 1 for _, clean in in_groups[:-1])
    masked = target[~is_sentinel(target)]
    assert not np.isin(masked, inputs).any()  # masked tokens never appear in the input
    if length == "16-128":
        assert 16 <= len(used) <= 128
    if length == "1024-4000":
        assert 1024 <= len(used) <= 4000


@PROPS
@given(
    documents(),
    st.integers(0, 999),
    st.integers(2, 4200),
    st.sampled_from([0.15, 0.85, 0.5]),
    st.sampled_from([1, 3, 8, 32]),
    st.booleans(),
)
def test_autoencoding(tokens, seed, budget, rate, span, shuffle):
    params = {"mask_rate": rate, "mean_span": span, "shuffle": shuffle}
    made = make("autoencoding", params, tokens, seed, budget)
    if not made:
        return
    inputs, target, used = made
    assert np.array_equal(target, used)  # the target is the original text
    assert numbered(inputs[is_sentinel(inputs)])
    head, groups = split_on(inputs, is_sentinel)
    pieces = [p for p in [head, *(piece for _, piece in groups)] if len(p)]  # clean spans
    position = {int(t): i for i, t in enumerate(target)}
    starts = [position[int(p[0])] for p in pieces]
    for piece, start in zip(pieces, starts, strict=True):  # each clean span is a real span
        assert np.array_equal(target[start : start + len(piece)], piece)
    clean = np.concatenate(pieces)
    assert not np.isin(np.setdiff1d(target, clean), inputs).any()
    in_order = all(a < b for a, b in zip(starts, starts[1:], strict=False))
    if shuffle:  # the shuffle really happens: at least two clean spans, out of order
        assert len(pieces) >= 2 and not in_order
    else:  # each sentinel stands where its masked span was
        rebuilt, cursor = [], 0
        for piece, start in zip(pieces, starts, strict=True):
            rebuilt += [[SENT]] * (start > cursor) + [piece]
            cursor = start + len(piece)
        rebuilt += [[SENT]] * (cursor < len(target))
        layout = np.concatenate(rebuilt)
        assert np.array_equal(np.where(is_sentinel(inputs), SENT, inputs), layout)


def find_spans(context, query, d):
    """Follow the selective-copying claim: scan for start, then for end delimiters."""
    found, search = [], 0
    for item in query.reshape(-1, 2 * d + 2):
        start, end = item[1 : d + 1], item[d + 2 :]
        grams = np.lib.stride_tricks.sliding_window_view(context, d)
        hit_start = np.flatnonzero((grams[search:] == start).all(1))[0] + search
        s = hit_start + d
        e = np.flatnonzero((grams[s:] == end).all(1))[0] + s
        found.append(context[s:e])
        search = e + d
    return found


@PROPS
@given(
    documents(unique=False),
    st.integers(0, 999),
    st.integers(40, 2100),
    st.sampled_from(["before", "after"]),
    st.sampled_from(["1-4", 2]),
    st.sampled_from(["1-8", 1, 3]),
    st.sampled_from(["1-12", "4-12"]),
)
def test_selective_copying(tokens, seed, budget, where, spans, delim, span_length):
    params = {
        "context_position": where,
        "spans": spans,
        "delimiter_length": delim,
        "context_length": "32-400",
        "span_length": span_length,
    }
    made = make("selective_copying", params, tokens, seed, budget)
    if not made:
        return
    inputs, target, used = made
    assert target[-1] == SPECIALS.done
    gap = SENT + 2
    pieces = np.split(target[:-1], np.flatnonzero(target[:-1] == gap))
    pieces = [pieces[0]] + [p[1:] for p in pieces[1:]]
    n = len(used)
    context, query = (inputs[:n], inputs[n:]) if where == "before" else (inputs[-n:], inputs[:-n])
    assert np.array_equal(context, used)
    d = (np.flatnonzero(query == SENT + 1)[0]) - 1
    assert len(query) == len(pieces) * (2 * d + 2)
    found = find_spans(context, query, d)
    assert all(np.array_equal(a, b) for a, b in zip(found, pieces, strict=True))
    lo = int(span_length.split("-")[0])
    assert all(lo <= len(p) <= 12 for p in pieces)  # the span_length band, as a reader finds it


@PROPS
@given(
    documents(unique=False),
    st.integers(0, 999),
    st.integers(8, 2100),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([1, 3]),
    st.sampled_from(["1-4", 3]),
)
def test_associative_recall(tokens, seed, budget, key_len, value_len, queries):
    params = {"pairs": "2-40", "key_length": key_len, "value_length": value_len, "queries": queries}
    made = make("associative_recall", params, tokens, seed, budget)
    if not made:
        return
    inputs, target, used = made
    w = key_len + value_len
    table = used.reshape(-1, w)
    assert 2 <= len(table) <= 40
    assert np.array_equal(inputs[: len(used)], used) and inputs[len(used)] == SENT
    asked = inputs[len(used) + 1 :].reshape(-1, key_len)
    assert target[-1] == SPECIALS.done
    values = target[:-1].reshape(-1, value_len)
    assert len(values) == len(asked) >= 1
    assert len({tuple(k) for k in asked}) == len(asked)  # distinct keys asked
    for key, value in zip(asked, values, strict=True):
        first = np.flatnonzero((table[:, :key_len] == key).all(1))[0]  # its first occurrence
        assert np.array_equal(table[first, key_len:], value)


@pytest.mark.parametrize(
    "name",
    [
        "next_token",
        "prefix_lm",
        "infilling",
        "copying",
        "deshuffling",
        "autoencoding",
        "selective_copying",
        "associative_recall",
    ],
)
def test_short_documents_are_refused_not_fatal(name):
    cls = get_objective(name)
    objective = cls(cls.Config(), SPECIALS, PARADIGM)
    rng = np.random.default_rng(0)
    for n in (0, 1):
        assert objective.sample(np.arange(n, dtype=np.int32), rng, 2048) is None
    assert objective.sample(np.arange(5000, dtype=np.int32), rng, 1) is None


@pytest.mark.parametrize("n", [1, 7, 256, 257, 3000])  # both sides of SMALL_TABLE
def test_first_occurrences_of_keys(n):
    from birdie_ssm.objectives.associative_recall import first_occurrences

    keys = np.random.default_rng(n).integers(0, max(2, n // 3), n).astype(np.uint64)
    want = [i for i, k in enumerate(keys.tolist()) if k not in keys[:i].tolist()]
    assert first_occurrences(keys).tolist() == want
