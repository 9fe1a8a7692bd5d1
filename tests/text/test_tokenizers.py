"""Tokenizers: byte, Hugging Face JSON and tiktoken BPE files built here (no downloads)."""

import base64
import json
import pickle
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.config import DataConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.text import make_tokenizer
from birdie_ssm.text.tokenizer import NUM_PARADIGMS, NUM_SENTINELS, document_joiner

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


def test_sentencepiece_model_with_its_own_bos_and_eos(tmp_path):
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 30), model_writer=model, vocab_size=60,
        model_type="bpe", minloglevel=2,
    )  # fmt: skip
    path = tmp_path / "tiny.model"
    path.write_bytes(model.getvalue())
    tok = make_tokenizer(DataConfig(tokenizer="sentencepiece", tokenizer_path=str(path)))
    ids = tok.encode("the quick brown fox")
    assert tok.decode(ids) == "the quick brown fox"
    assert tok.specials.base_size == 60 and (tok.bos_id, tok.eos_id) == (1, 2)
    np.testing.assert_array_equal(document_joiner(tok), [2, 1])  # documents end and begin
    copy = pickle.loads(pickle.dumps(tok))  # what a data worker receives
    assert copy.encode("the fox").tolist() == tok.encode("the fox").tolist()
    (tmp_path / "bad.model").write_text("not a model")
    with pytest.raises(BirdieError, match="'.*bad.model' is not a sentencepiece model"):
        make_tokenizer(
            DataConfig(tokenizer="sentencepiece", tokenizer_path=str(tmp_path / "bad.model"))
        )


def _hf_with_eos(hf_file, directory):
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(hf_file)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    directory.mkdir(parents=True)
    tok.save(str(directory / "tokenizer.json"))
    settings = {"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}}
    (directory / "tokenizer_config.json").write_text(json.dumps(settings))
    return tok.token_to_id("<|endoftext|>")


def test_hf_tokenizer_by_directory_and_by_hub_name_from_the_local_cache(
    hf_file, tmp_path, monkeypatch
):
    import huggingface_hub.constants as hub

    eos = _hf_with_eos(hf_file, tmp_path / "gpt2-like")
    tok = make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path=str(tmp_path / "gpt2-like")))
    assert (tok.bos_id, tok.eos_id) == (eos, eos)
    np.testing.assert_array_equal(document_joiner(tok), [eos])
    # The Hub's cache layout: models--user--tok/{refs/main, snapshots/<commit>/...}
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--user--tok"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tmp_path / "gpt2-like", repo / "snapshots" / commit)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    by_name = make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path="user/tok"))
    assert by_name.encode("the lazy dog").tolist() == tok.encode("the lazy dog").tolist()
    assert by_name.eos_id == eos
    with pytest.raises(BirdieError, match="'user/nothing' is neither a local file"):
        make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path="user/nothing"))


def test_tiktoken_file_is_split_by_its_encodings_rule(tmp_path):
    merges = [bytes([i]) for i in range(256)] + [b"oW", b"He"]
    lines = b"".join(base64.b64encode(t) + b" %d\n" % r for r, t in enumerate(merges))
    (tmp_path / "cl100k_base.tiktoken").write_bytes(lines)
    (tmp_path / "o200k_base.tiktoken").write_bytes(lines)
    cl100k, o200k = (
        make_tokenizer(DataConfig(tokenizer="tiktoken", tokenizer_path=str(tmp_path / name)))
        for name in ("cl100k_base.tiktoken", "o200k_base.tiktoken")
    )
    # cl100k reads "HelloWorld" as one word, so "oW" merges; o200k splits at the capital
    assert len(cl100k.encode("HelloWorld")) == len(o200k.encode("HelloWorld")) - 1
    assert cl100k.eos_id == 258 and cl100k.specials.base_size == 259


def test_a_run_directory_keeps_its_tokenizer(hf_file, tmp_path):
    from birdie_ssm.text import save_tokenizer

    original = tmp_path / "somewhere" / "tok"
    _hf_with_eos(hf_file, original)
    config = DataConfig(tokenizer="hf", tokenizer_path=str(original))
    tok = make_tokenizer(config)
    save_tokenizer(tok, tmp_path / "run")
    shutil.rmtree(tmp_path / "somewhere")  # the run moved to a machine without the original
    again = make_tokenizer(config, tmp_path / "run")
    assert again.encode("the lazy dog").tolist() == tok.encode("the lazy dog").tolist()
    assert again.eos_id == tok.eos_id


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(hf_file):
    from birdie_ssm.config import Config
    from birdie_ssm.train.build import vocab_size_for

    tok = make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path=hf_file))
    config = Config.model_validate({"model": {"vocab_size": 256}})
    with pytest.raises(BirdieError, match="model.vocab_size 256 is smaller than the tokenizer"):
        vocab_size_for(config, tok)
