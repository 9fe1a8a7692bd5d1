"""Generators and scorers on hand-made cases: an oracle scores 100%, a constant guess ~chance."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.runner import aggregate, longest_trained_copy
from birdie_ssm.tasks import TASKS, get_task, infilling, phonebook, task_settings
from birdie_ssm.text.synthetic import synthetic_document
from birdie_ssm.text.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
EOD = TOK.specials.eod


def _docs(i: int) -> str:
    return synthetic_document(123, i)


# Each task's headline metric and a bound on what a constant guess scores (None: its chance).
CASES = {
    "phonebook": ("exact", 0.0),
    "multi-phonebook": ("digit_acc", 0.1),
    "mqar": ("accuracy", 0.01),
    "copying": ("token_acc", 1 / 26),
    "selective-copying": ("token_acc", 1 / 16),
    "infilling": ("token_acc", None),
}


def _items(name, **values):
    return get_task(name).items(task_settings(name, {"samples": 40, **values}), TOK, _docs)


def _score(name, items, predictions, native=False):
    return aggregate(items, get_task(name).score(items, predictions, TOK, native), "point")


@pytest.mark.parametrize("name", list(CASES))
def test_generation_is_deterministic_in_the_seed(name):
    a, b, c = _items(name), _items(name), _items(name, seed=1)
    assert all(np.array_equal(x.context, y.context) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x.context, z.context) for x, z in zip(a, c, strict=True))


NATIVE = ["mqar", "copying", "selective-copying", "infilling"]


@pytest.mark.parametrize(
    ("name", "native"), [(name, False) for name in CASES] + [(name, True) for name in NATIVE]
)
def test_oracle_scores_everything(name, native):
    items = _items(name)
    assert all(item.has_native for item in items) == (name in NATIVE)
    oracle = [np.append(item.form(native)[1], EOD) for item in items]
    for point in _score(name, items, oracle, native):
        assert point[CASES[name][0]] == 1.0


@pytest.mark.parametrize("name", NATIVE)
def test_a_native_form_is_not_scored_as_right_when_wrong(name):
    items = _items(name, samples=4)
    wrong = [np.full(len(item.form(True)[1]), TOK.encode("~")[0]) for item in items]
    assert all(p[CASES[name][0]] == 0.0 for p in _score(name, items, wrong, native=True))


def test_chance_is_a_function_of_settings_and_items():
    for name in CASES:
        settings = task_settings(name, {"samples": 4})
        items = get_task(name).items(settings, TOK, _docs)
        assert 0.0 < get_task(name).chance(settings, items) < 1.0


@pytest.mark.parametrize("name", list(CASES))
def test_constant_guess_scores_near_chance(name):
    items = _items(name)
    metric, chance = CASES[name]
    answers = np.concatenate([item.answer for item in items])
    guess = np.bincount(answers).argmax()  # the best single token there is
    if chance is None:
        chance = infilling.constant_guess_accuracy(items)
    guesses = [np.full(len(item.answer), guess) for item in items]
    score = np.mean([p[metric] for p in _score(name, items, guesses)])
    assert score <= chance + 0.08


def test_phonebook_layout_matches_jelassi():
    item = _items("phonebook", book_sizes=[5], digits=7, samples=1)[0]
    lines = TOK.decode(item.context).split("\n")
    assert len(lines) == 5 + 3
    book = dict(line.split(": ") for line in lines[:5])
    assert lines[5].split(": ")[0] in book and lines[6].split(": ")[0] in book
    assert lines[7].endswith(": ") and book[lines[7][:-2]] == TOK.decode(item.answer)
    assert len(book[lines[7][:-2]]) == 7 and book[lines[7][:-2]][0] in "6789"


def test_multi_phonebook_partial_credit_per_digit_and_number():
    item = _items("multi-phonebook", queries=[2], book_size=4, samples=1)[0]
    number0, number1 = TOK.decode(item.answer).split(", ")
    wrong = "".join(str((int(d) + 1) % 10) for d in number1[:5]) + number1[5:]
    # The i-th answer answers the i-th name asked; the second number has five digits wrong.
    guess = TOK.encode(f"{number0}, {wrong}")
    (score,) = phonebook.score_multi_phonebook([item], [guess], TOK, False)
    assert score == {"number_acc": 0.5, "digit_acc": pytest.approx(0.75)}
    # Answers in the wrong order are wrong, however right the numbers.
    (swapped,) = phonebook.score_multi_phonebook(
        [item], [TOK.encode(f"{number1}, {number0}")], TOK, False
    )
    assert swapped["number_acc"] == 0.0


def test_multi_phonebook_layout_matches_birdie():
    """The question before and after the book; the label: the numbers, comma-separated, in the
    order asked."""
    item = _items("multi-phonebook", queries=[3], book_size=8, samples=1)[0]
    context = TOK.decode(item.context)
    names = phonebook.asked_names(context)
    lines = context.split("\n")
    question = "What are the phone numbers for " + ", ".join(names) + "?"
    assert lines[0] == question + " Find them in the phonebook below." and lines[1] == "Phonebook:"
    assert lines[-2] == question + " Find them in the phonebook above."
    book = dict(line.split(": ") for line in lines[2:-2])
    assert len(book) == 8 and len(names) == 3
    assert TOK.decode(item.answer) == ", ".join(book[name] for name in names)


def test_multi_phonebook_names_must_be_the_ones_asked_in_order():
    item = _items("multi-phonebook", queries=[2], book_size=8, samples=1)[0]
    names = phonebook.asked_names(TOK.decode(item.context))
    numbers = TOK.decode(item.answer).split(", ")
    book = dict(line.split(": ") for line in TOK.decode(item.context).split("\n")[2:-2])
    other = next(name for name in book if name not in names)

    def score(text):
        return phonebook.score_multi_phonebook([item], [TOK.encode(text)], TOK, False)[0]

    named = f"{names[0]}: {numbers[0]}, {names[1]}: {numbers[1]}"
    assert score(named)["number_acc"] == 1.0  # naming the person asked is allowed
    assert score(f"{other}: {numbers[0]}, {numbers[1]}")["number_acc"] == 0.5  # not asked
    assert score(f"{names[1]}: {numbers[0]}, {numbers[1]}")["number_acc"] == 0.5  # wrong slot
    assert score(numbers[0]) == {"number_acc": 0.5, "digit_acc": 0.5}  # the second is missing
    assert score("") == {"number_acc": 0.0, "digit_acc": 0.0}


@settings(max_examples=60, deadline=None)
@given(
    layout=st.text(alphabet=sorted(phonebook.NUMBER_CHARS - {"#"}) + ["#"] * 3, max_size=12),
    named=st.booleans(),
)
def test_multi_phonebook_every_valid_format_scores_a_perfect_reader_fully(layout, named):
    """Any number_format that passes validation (one that starts with '-', '.' or ')' too) gives
    numbers that a reader answering right, bare or after the names, scores 1.0 on."""
    number_format = layout + "#"
    item = _items("multi-phonebook", queries=[3], book_size=8, samples=1,
                  number_format=number_format)[0]  # fmt: skip
    names = phonebook.asked_names(TOK.decode(item.context))
    numbers = TOK.decode(item.answer).split(", ")
    if named:
        text = ", ".join(f"{n}: {x}" for n, x in zip(names, numbers, strict=True))
    else:
        text = ", ".join(numbers)
    (score,) = phonebook.score_multi_phonebook([item], [TOK.encode(text)], TOK, False)
    assert score == {"number_acc": 1.0, "digit_acc": 1.0}


def test_parse_answers_reads_numbers_starting_with_punctuation():
    assert phonebook.parse_answers("-123-4567", ["Ann"]) == ["-123-4567"]
    assert phonebook.parse_answers("Ann: .55, ) 1", ["Ann", "Bo"]) == [".55", ""]
    assert phonebook.parse_answers("--, Bo: )1(", ["Ann", "Bo"]) == ["", ")1("]


@pytest.mark.parametrize("book_size", [8, 64])
def test_multi_phonebook_copying_the_book_scores_nothing(book_size):
    """A "model" that repeats the book verbatim, or its numbers in book order, gets (almost)
    nothing; an oracle gets everything. Each item may generate its answer's length + 2 tokens,
    as evaluation/runner.predict allows it."""
    items = _items("multi-phonebook", queries=[1, 2, 4, 8], book_size=book_size)
    verbatim, numbers_only = [], []
    for item in items:
        book = TOK.decode(item.context).split("\n")[2:-2]
        limit = len(item.answer) + 2
        verbatim.append(TOK.encode("\n".join(book))[:limit])
        numbers_only.append(TOK.encode(", ".join(line.split(": ")[1] for line in book))[:limit])
    # A copy answers the i-th name only where the book's i-th entry is it: 1 / book_size.
    for copy in (verbatim, numbers_only):
        points = _score("multi-phonebook", items, copy)
        assert np.mean([p["number_acc"] for p in points]) <= 1 / book_size + 0.1
        assert np.mean([p["digit_acc"] for p in points]) <= 0.12 + 1 / book_size + 0.1
    oracle = [np.append(item.answer, EOD) for item in items]
    assert all(
        p["number_acc"] == p["digit_acc"] == 1.0 for p in _score("multi-phonebook", items, oracle)
    )


def test_mqar_keys_and_values_use_disjoint_alphabets():
    item = _items("mqar", pairs=[8], samples=1)[0]
    table, query = TOK.decode(item.context).split("\n")
    pairs = [p.split(":") for p in table.split(" ")]
    assert len(pairs) == 8 and all(k.isalpha() and v.isdigit() for k, v in pairs)
    assert dict(pairs)[query[:-1]] == TOK.decode(item.answer)


def test_infilling_native_form_uses_a_sentinel():
    item = _items("infilling", spans=[8], samples=1)[0]
    sentinel = TOK.specials.sentinel(0)
    assert item.native_answer[0] == sentinel and len(item.native_answer) == 9
    hole = int(np.flatnonzero(item.native_input == sentinel)[0])
    assert np.array_equal(item.native_input[:hole], item.context)


def test_copying_flags_lengths_beyond_training():
    from tests.helpers import tiny_config

    config = tiny_config("objectives.mixture=[{name: copying, params: {length: '4-20'}}]")
    assert longest_trained_copy(config) == 20
    assert longest_trained_copy(tiny_config()) == (64 - 3) // 2


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("phonebook", {"book_size": [4]}, "unknown setting 'book_size'"),
        ("phonebook", {"book_sizes": [2]}, "book_sizes"),
        ("mqar", {"samples": "many"}, "samples"),
        ("copying", {"format": "sideways"}, "format"),
    ],
)
def test_bad_settings_are_clear(name, values, expected):
    with pytest.raises(BirdieError, match=expected):
        task_settings(name, values)


def test_every_task_is_tested_here():
    assert set(CASES) == set(TASKS)
