"""Tokenizers: byte, Hugging Face JSON and tiktoken BPE files built here (no downloads)."""

import base64

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.config import DataConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.text import make_tokenizer
from birdie_ssm.text.tokenizer import NUM_PARADIGMS, NUM_SENTINELS

CORPUS = ["the quick brown fox jumps over the lazy dog", "héllo wörld, naïve café ☕", "a\n\tb  c"]


@pytest.fixture(scope="module")
def hf_file(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer)
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    tok.save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tiktoken_file(tmp_path_factory):
    merges = [bytes([i]) for i in range(256)] + [b"th", b"the", b" the", b"qu", b"ck"]
    lines = [base64.b64encode(tok) + b" %d" % rank for rank, tok in enumerate(merges)]
    path = tmp_path_factory.mktemp("tt") / "tiny.tiktoken"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def tokenizers(hf_file, tiktoken_file):
    return [
        make_tokenizer(DataConfig()),
        make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path=hf_file)),
        make_tokenizer(DataConfig(tokenizer="tiktoken", tokenizer_path=tiktoken_file)),
    ]


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=200))
def test_round_trip_and_special_layout(hf_file, tiktoken_file, text):
    for tok in tokenizers(hf_file, tiktoken_file):
        ids = tok.encode(text)
        assert ids.dtype == np.int32 and (ids < tok.specials.base_size).all()
        assert tok.decode(ids) == text
        sp = tok.specials
        assert sp.end == tok.vocab_size == sp.base_size + 4 + NUM_PARADIGMS + NUM_SENTINELS
        assert tok.decode([*ids, sp.sep, sp.sentinel(2)]) == text + "<sep><sentinel_2>"


def test_merges_are_used(tiktoken_file):
    tok = make_tokenizer(DataConfig(tokenizer="tiktoken", tokenizer_path=tiktoken_file))
    assert len(tok.encode("the quick")) < len("the quick")


@pytest.mark.parametrize("kind", ["hf", "tiktoken"])
def test_missing_or_bad_files_are_clear_errors(tmp_path, kind):
    with pytest.raises(BirdieError, match="does not exist"):
        make_tokenizer(DataConfig(tokenizer=kind, tokenizer_path=str(tmp_path / "nope")))
    bad = tmp_path / "bad"
    bad.write_text("not a tokenizer {")
    with pytest.raises(BirdieError, match="data.tokenizer_path"):
        make_tokenizer(DataConfig(tokenizer=kind, tokenizer_path=str(bad)))
