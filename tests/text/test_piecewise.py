"""The memoized piece encoder gives exactly the ids of the tokenizers library's own encode."""

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.config import DataConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.tasks import TASKS, get_task, task_settings
from birdie_ssm.text import make_tokenizer
from birdie_ssm.text.piecewise import piece_encoder

ENDOFTEXT = "<|endoftext|>"
CORPUS = [
    "Ada Lovelace: 6123456789\nAlan Turing: 7001234567\n",
    "abc:12 def:34 ghi:56\nabc:",
    "it's we'll they've I'd you're can't  --  x == y; f(3.14) # 2024\n\n\tdone",
    "naïve café ☕ 東京 , and then the end",
]
# Characters the split rule treats differently: letters, digits, apostrophes (contractions),
# punctuation, the six ASCII spaces, control characters Oniguruma does not call spaces.
ASCII_EDGES = "aZs'l5:. \n\t\x0b\r\x1c\x00"
PIECES = ["'s", "'ll", "'ve", "  ", "\n\n", "12345", " the", ENDOFTEXT, "é", "☕"]


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=[ENDOFTEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    tok.train_from_iterator(CORPUS * 30, trainer)
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def ours(bpe_file):
    tokenizer = make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path=str(bpe_file)))
    assert tokenizer._pieces is not None  # the fast path is on for this tokenizer
    return tokenizer


def library(tokenizer, text):
    return tokenizer._tok.encode(text, add_special_tokens=False).ids


texts = st.one_of(
    st.text(st.characters(max_codepoint=127), max_size=80),  # ASCII: the fast path
    st.lists(st.sampled_from([*ASCII_EDGES, *PIECES]), max_size=30).map("".join),
    st.text(max_size=40),  # any Unicode: the library's path
)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_fast_path_equals_the_librarys_encode(ours, text):
    ids = ours.encode(text)
    assert ids.dtype == np.int32 and ids.flags.writeable and ids.tolist() == library(ours, text)
    if text.isascii() and ENDOFTEXT not in text:
        assert ours._pieces.encode(text) is not None  # answered by the fast path itself


def test_every_short_string_of_edge_characters(ours):
    for n in range(1, 5):
        for chars in itertools.product(ASCII_EDGES, repeat=n):
            text = "".join(chars)
            assert ours._pieces.encode(text).tolist() == library(ours, text), repr(text)


def test_the_cache_survives_pickling_empty_and_encodes_alike(ours):
    ours.encode("Ada Lovelace: 6123")
    copy = pickle.loads(pickle.dumps(ours))
    assert not copy._pieces._cache and copy.encode("Ada Lovelace: 6123").tolist() == library(
        ours, "Ada Lovelace: 6123"
    )


def _template(tok):
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {ENDOFTEXT}", special_tokens=[(ENDOFTEXT, 0)]
    )


def _normalizer(tok):
    from tokenizers import normalizers

    tok.normalizer = normalizers.Lowercase()


def _prefix_space(tok):
    from tokenizers import pre_tokenizers

    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)


def _whitespace(tok):
    from tokenizers import pre_tokenizers

    tok.pre_tokenizer = pre_tokenizers.Whitespace()


@pytest.mark.parametrize(
    "change", [_template, _normalizer, _prefix_space, _whitespace, lambda t: t.enable_truncation(3)]
)
def test_other_tokenizers_keep_the_librarys_encode(bpe_file, change):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bpe_file))
    change(tok)
    assert piece_encoder(tok) is None


class Plain:
    """The HF tokenizer with the library's encode alone (the reference for task items)."""

    def __init__(self, tokenizer):
        self.specials, self._tokenizer = tokenizer.specials, tokenizer

    def encode(self, text):
        return np.asarray(library(self._tokenizer, text), dtype=np.int32)

    def decode(self, ids):
        return self._tokenizer.decode(ids)


@pytest.mark.parametrize("task", [n for n, t in TASKS.items() if not t.needs_documents])
def test_task_items_are_those_of_the_librarys_encode(ours, task):
    spec, plain = get_task(task), Plain(ours)
    both = (plain, ours)
    settings = task_settings(task, {})
    for point in spec.points(settings):
        for seed in range(3):
            if spec.tuned_form is not None:
                want, got = (spec.tuned_form(settings, t, point, rng(seed, point)) for t in both)
                assert_same(want, got)
            try:
                want = spec.item(settings, plain, point, rng(seed, point))
            except BirdieError:  # mqar's native form, where keys take varying token counts
                with pytest.raises(BirdieError):
                    spec.item(settings, ours, point, rng(seed, point))
                continue
            got = spec.item(settings, ours, point, rng(seed, point))
            assert_same(want.form(native=False), got.form(native=False))
            assert_same(want.form(native=True), got.form(native=True))


def rng(seed, point):
    return np.random.default_rng([seed, point])


def assert_same(want, got):
    for a, b in zip(want, got, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
