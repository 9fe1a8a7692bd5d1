"""Phone-book books with other names and number layouts; the defaults unchanged, item for item."""

import hashlib
import re

import numpy as np
import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation import runner
from birdie_ssm.evaluation.runner import EvalContext, evaluate_task
from birdie_ssm.tasks import get_task
from birdie_ssm.tasks.phonebook import asked_names
from birdie_ssm.text.tokenizer import ByteTokenizer
from tests.helpers import tiny_config

# sha256 of every default item (context | answer | point), recorded before names/number_format
# existed: the defaults must keep drawing exactly the same books.
DEFAULT_HASHES = {
    "phonebook": "9cf639ac065f357ce835766be274f2cef10cacb11ef686978191adaaadc0126d",
    "multi-phonebook": "cfeb6ecf11c366570ba2f9feb0fe8b1ccd57757ca0b7a54d85159a66f7609138",
}


def _items(task, *settings):
    task = get_task(task)
    return task.items(task.parse(list(settings)), ByteTokenizer())


@pytest.mark.parametrize("task", sorted(DEFAULT_HASHES))
def test_default_items_are_byte_identical(task):
    h = hashlib.sha256()
    for item in _items(task):
        for ids in (item.context, item.answer):
            h.update(ids.astype("int64").tobytes())
            h.update(b"|")
        h.update(str(item.point).encode())
    assert h.hexdigest() == DEFAULT_HASHES[task]


def test_names_and_number_format_shape_the_book(tmp_path):
    tok = ByteTokenizer()
    names = tmp_path / "names.txt"
    names.write_text("Ann Lee\nBo Ma\n\nCy Oz\nDi Pu\n")
    for extra in (f"names_file={names}", "names=[Ann Lee, Bo Ma, Cy Oz, Di Pu]"):
        for item in _items("phonebook", extra, "number_format=555-01##", "book_sizes=[4]"):
            context, answer = tok.decode(item.context), tok.decode(item.answer)
            assert answer.startswith("555-01") and len(answer) == 8
            lines = context.split("\n")[:4]
            assert sorted(line.split(":")[0] for line in lines) == [
                "Ann Lee",
                "Bo Ma",
                "Cy Oz",
                "Di Pu",
            ]
    multi = get_task("multi-phonebook")
    settings = ["number_format=(###)###-####", "book_size=8", "queries=[3]", "samples=4"]
    items = _items("multi-phonebook", *settings)
    scores = multi.score(items, [i.answer for i in items], tok, False)
    assert all(s == {"number_acc": 1.0, "digit_acc": 1.0} for s in scores)
    # A guesser without the book gets the layout's 3 fixed characters and 1 digit in 10 right.
    assert multi.chance(multi.parse(settings), items) == pytest.approx((3 + 10 * 0.1) / 13)
    assert (
        get_task("phonebook").chance(get_task("phonebook").parse(['number_format="##"']), [])
        == 0.01
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (["number_format=12-34"], "at least one '#'"),
        (['number_format="##x##"'], "only digits"),  # quoted: an unquoted # starts a YAML comment
        (["names=[a, a, b, c]"], "'a' appears twice"),
        (["names=[a:b, c, d]"], "'a:b'"),
        (["names_file=/no/such/names.txt"], "does not exist"),
        (["names=[a, b, c]", "names_file=x"], "not both"),
        (["names=[a, b, c]", "book_sizes=[4]"], "book_sizes must be"),
    ],
)
def test_bad_book_settings_are_one_clear_error(settings, expected):
    with pytest.raises(BirdieError, match=expected.replace("(", r"\(")):
        get_task("phonebook").parse(settings)


def test_multi_phonebook_chance_is_what_a_guesser_without_the_book_scores():
    multi = get_task("multi-phonebook")
    settings = multi.parse(["queries=[1, 3]", "samples=200"])
    items = multi.items(settings, ByteTokenizer())
    # The best guess that ignores the book: a first digit of 6-9, then any digits.
    guesses = [ByteTokenizer().encode(", ".join(["6000000000"] * item.point)) for item in items]
    scores = multi.score(items, guesses, ByteTokenizer(), False)
    measured = np.mean([s["digit_acc"] for s in scores])
    assert multi.chance(settings, items) == pytest.approx(0.115)
    assert abs(measured - 0.115) < 0.01  # 600 numbers: a standard error of ~0.004


def _book_oracle(monkeypatch, named: bool):
    """Replace decoding with a reader of the prompt's own book that answers every name asked
    (as ``Name: number`` when ``named``), cut at the decoding limit it is given."""
    tok = ByteTokenizer()

    def complete(model, prompts, *, max_new, **kwargs):
        out = []
        for prompt, limit in zip(prompts, max_new, strict=True):
            text = tok.decode(prompt[~tok.specials.is_special(prompt)])
            book = dict(re.findall(r"^([^:\n]+): (\d+)$", text, re.M))
            names = asked_names(text)
            answer = ", ".join(f"{n}: {book[n]}" if named else book[n] for n in names)
            out.append(np.asarray(tok.encode(answer), np.int32)[:limit])
        return out

    monkeypatch.setattr(runner, "complete", complete)


@pytest.mark.parametrize("named", [False, True])
def test_right_answers_in_every_accepted_form_score_full_marks(monkeypatch, named):
    _book_oracle(monkeypatch, named)
    config = tiny_config()
    ctx = EvalContext(None, config, ByteTokenizer(), None, 0)
    multi = get_task("multi-phonebook")
    settings = multi.parse(["queries=[1, 2, 8]", "book_size=8", "samples=4"])
    result = evaluate_task(ctx, "multi-phonebook", settings)
    assert [p["number_acc"] for p in result.points] == [1.0, 1.0, 1.0]
