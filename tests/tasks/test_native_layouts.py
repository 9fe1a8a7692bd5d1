"""Each task's native form is the layout its objective's make() produces for the same content:
the layout functions are defined once, in tasks/, and used by both."""

import numpy as np
import pytest

from birdie_ssm.objectives import get_objective
from birdie_ssm.objectives.base import build_config
from birdie_ssm.tasks import get_task, task_settings
from birdie_ssm.tasks.copying import END, GAP, START
from birdie_ssm.text.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
SP = TOK.specials


def objective(name, **params):
    cls = get_objective(name)
    return cls(build_config(cls, params), SP, SP.paradigm(0))


def _items(name, **values):
    return get_task(name).items(task_settings(name, {"samples": 6, **values}), TOK)


def test_mqar_native_form_is_what_associative_recall_makes_of_its_pairs():
    made = objective("associative_recall", pairs="8", key_length=3, value_length=2, queries="1")
    for item in _items("mqar", pairs=[8]):
        table = item.native_input[: 8 * 5]  # the pairs, back to back, then the query
        key = item.native_input[8 * 5 + 1 :]
        for seed in range(200):  # the draw that asks this item's key
            inputs, target, rest = made.make(table, np.random.default_rng(seed), 4096)
            if np.array_equal(inputs[-3:], key):
                break
        else:
            pytest.fail("no draw asked the item's key")
        assert np.array_equal(inputs, item.native_input)
        assert np.array_equal(target, item.native_answer) and len(rest) == 0
        assert TOK.decode(target[:-1]) == TOK.decode(item.answer) and target[-1] == SP.done


def test_copying_native_form_is_what_copying_makes():
    made = objective("copying", length="16")
    for item in _items("copying", lengths=[16]):
        inputs, target, rest = made.make(item.native_input, np.random.default_rng(0), 4096)
        assert np.array_equal(inputs, item.native_input) and len(rest) == 0
        assert np.array_equal(target, item.native_answer)


def test_infilling_native_form_is_what_infilling_makes_of_one_span():
    from birdie_ssm.tasks.infilling import sentinel_layout

    text = "".join(chr(97 + i % 26) for i in range(300))
    items = get_task("infilling").items(
        task_settings("infilling", {"samples": 3, "spans": [8], "passage": 64}), TOK, lambda i: text
    )
    passage = TOK.encode(text)[:64]
    for item in items:
        start = len(item.context)
        lengths = np.array([start, 8, 64 - start - 8])
        inputs, target = sentinel_layout(passage, lengths, np.array([SP.sentinel(0)]))
        assert np.array_equal(inputs, item.native_input)
        assert np.array_equal(target, item.native_answer)
    # The objective builds its examples with the same function: a reader that puts each
    # sentinel's tokens back recovers the passage.
    made = objective("infilling")
    tokens = TOK.encode(text)
    for seed in range(20):
        inputs, target, rest = made.make(tokens, np.random.default_rng(seed), 256)
        assert np.array_equal(_fill(inputs, target), tokens[: len(tokens) - len(rest)])


def _fill(inputs, target):
    is_sentinel = SP.is_special(target)
    pieces = np.split(target, np.flatnonzero(is_sentinel)[1:])
    fills = {int(p[0]): p[1:] for p in pieces}
    return np.concatenate([fills.get(int(t), [t]) for t in inputs])


def _read_selective(inputs, target_len_hint=None):
    """What a reader copies out of a selective-copying input (context before the query): per
    query entry, the tokens from after the start delimiter's first occurrence (since the last
    span) to the end delimiter's first occurrence after it."""
    marks = [SP.sentinel(START), SP.sentinel(END)]
    first = int(np.flatnonzero(np.isin(inputs, marks))[0])
    context, query = inputs[:first], inputs[first:]
    bounds = np.flatnonzero(np.isin(query, marks))
    parts = np.split(query, bounds[1:])
    spans, search = [], 0
    for opener, closer in zip(parts[0::2], parts[1::2], strict=True):
        start_delim, end_delim = opener[1:], closer[1:]
        p = _find(context, start_delim, search)
        s = p + len(start_delim)
        e = _find(context, end_delim, s)
        spans.append(context[s:e])
        search = e + len(end_delim)
    return spans


def _find(context, window, start):
    for i in range(start, len(context) - len(window) + 1):
        if np.array_equal(context[i : i + len(window)], window):
            return i
    raise AssertionError("delimiter not found")


def _answer_spans(target):
    parts = np.split(target[:-1], np.flatnonzero(target[:-1] == SP.sentinel(GAP)))
    return [parts[0], *(p[1:] for p in parts[1:])]


def test_selective_copying_native_form_reads_as_the_objective_reads_its_examples():
    items = _items("selective-copying", lengths=[48], tokens=6)
    assert all(item.has_native for item in items)
    for item in items:
        assert item.native_answer[-1] == SP.done
        (span,) = _read_selective(item.native_input)
        assert np.array_equal(span, item.native_answer[:-1]) and len(span) == 6
    # The objective's own examples read back the same way (same layout, same reading rule).
    made = objective("selective_copying", context_length="64-128", span_length="2-8")
    text = TOK.encode(" ".join(f"w{i * 7919 % 1000}" for i in range(400)))
    for seed in range(20):
        out = made.make(text, np.random.default_rng(seed), 1024)
        if out is None:
            continue
        inputs, target, _ = out
        spans = _read_selective(inputs)
        assert all(np.array_equal(a, b) for a, b in zip(spans, _answer_spans(target), strict=True))
