"""The token cache, the seeded document order, and the corpus mixture's shares and resume."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.config import Config, DataConfig, ObjectiveEntry, SourceConfig
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline import open_pipeline, token_corpus
from birdie_ssm.pipeline.documents import Split, permute
from birdie_ssm.pipeline.token_cache import TokenDocs, cache_root, cached_docs
from birdie_ssm.text.corpus import make_source
from birdie_ssm.text.tokenizer import ByteTokenizer


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(0, 2**64 - 1))
def test_permute_is_a_permutation(n, key):
    assert sorted(permute(i, n, key) for i in range(n)) == list(range(n))


@given(st.integers(2, 500))
def test_held_out_and_training_documents_partition_the_corpus(n):
    split = Split(n)
    val = [split.val_index(j) for j in range(split.n_val)]
    assert sorted([split.train_index(t) for t in range(split.n_train)] + val) == list(range(n))
    assert val == ([n - 1] if n < 50 else list(range(49, n, 50)))


def test_the_default_cache_follows_birdie_cache(monkeypatch, tmp_path):
    # The suite's own default (tests/conftest.py) is a temporary folder, never ~/.cache.
    assert not cache_root(DataConfig()).is_relative_to(Path.home() / ".cache")
    monkeypatch.setenv("BIRDIE_CACHE", str(tmp_path))
    assert cache_root(DataConfig()) == tmp_path / "tokens"
    assert cache_root(DataConfig(cache_dir=str(tmp_path / "mine"))) == tmp_path / "mine"


def write(path, docs):
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))


def test_the_cache_holds_each_document_encoded_and_is_built_once(tmp_path):
    docs = [f"doc {i} " * (i % 5) for i in range(700)]  # some empty
    write(tmp_path / "a.jsonl", docs)
    source, tok = SourceConfig(files=[str(tmp_path / "a.jsonl")]), ByteTokenizer()
    cached = cached_docs(source, "train", tok, tmp_path / "cache")
    assert len(cached) == len(docs)
    for i in (0, 1, 333, 699):
        np.testing.assert_array_equal(cached[i], tok.encode(docs[i].strip() and docs[i]))
    again = cached_docs(source, "train", tok, tmp_path / "cache")
    assert again.directory == cached.directory
    assert pickle.loads(pickle.dumps(cached)).directory == cached.directory
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [cached.directory.name]


def test_an_interrupted_build_continues_from_its_progress(tmp_path, monkeypatch):
    import birdie_ssm.pipeline.token_cache as tc

    docs = [f"document number {i}" for i in range(3000)]
    write(tmp_path / "a.jsonl", docs)
    source, tok = SourceConfig(files=[str(tmp_path / "a.jsonl")]), ByteTokenizer()
    calls = {"n": 0}
    real = tok.encode

    def flaky(text):
        calls["n"] += 1
        if calls["n"] == 2500:
            raise KeyboardInterrupt
        return real(text)

    monkeypatch.setattr(tc, "_PROGRESS_EVERY", 1)
    monkeypatch.setattr(tok, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        cached_docs(source, "train", tok, tmp_path / "cache")
    (partial,) = (tmp_path / "cache").glob("*.partial")
    assert json.loads((partial / "progress.json").read_text())["docs"] == 2048  # 4 batches
    calls["n"] = 0
    cached = cached_docs(source, "train", tok, tmp_path / "cache")
    assert calls["n"] == len(docs) - 2048  # only the rest was encoded
    assert [tok.decode(cached[i]) for i in range(len(docs))] == docs


def test_bad_data_leaves_no_cache_behind(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "a"}\n' * 600 + "{oops\n")
    source = SourceConfig(files=[str(tmp_path / "a.jsonl")])
    with pytest.raises(BirdieError, match="line 601: is not valid JSON"):
        cached_docs(source, "train", ByteTokenizer(), tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock"] == []


ARMS = [ObjectiveEntry(name="next_token")]


def two_sources(tmp_path, weights):
    write(tmp_path / "web.jsonl", [f"web page {i}. " * 20 for i in range(200)])
    write(tmp_path / "code.jsonl", [f"def f{i}(): return {i}\n" * 3 for i in range(200)])
    sources = [
        {"name": "web", "files": [str(tmp_path / "web.jsonl")], "weight": weights[0]},
        {"name": "code", "files": [str(tmp_path / "code.jsonl")], "weight": weights[1]},
    ]
    data = {"corpus": "files", "sources": sources, "cache_dir": str(tmp_path / "cache"),
            "seq_len": 128, "batch_size": 2, "streams": 2, "workers": 0}  # fmt: skip
    return Config.model_validate({"data": data})


def test_the_corpus_mixture_is_honoured_in_tokens_and_resumes_exactly(tmp_path):
    config = two_sources(tmp_path, (0.7, 0.3))
    tok = ByteTokenizer()
    arms = expand_arms(ARMS, tok.specials)
    corpus = token_corpus(config.data, make_source(config.data), tok)
    pipe = open_pipeline(config.data, corpus, tok, arms, np.ones(1))
    for _ in range(20):
        pipe.next_batch()
    counts = pipe.source_tokens()
    share = counts["web"] / (counts["web"] + counts["code"])
    assert abs(share - 0.7) < 0.03, counts
    state = json.loads(json.dumps(pipe.state_dict()))
    want = [pipe.next_batch().input_ids for _ in range(6)]
    for workers in (0, 2):  # the worker count is not part of the stream
        cfg = config.model_copy(
            update={"data": config.data.model_copy(update={"workers": workers})}
        )
        other = open_pipeline(cfg.data, corpus, tok, arms, np.ones(1))
        try:
            other.load_state_dict(state)
            got = [other.next_batch().input_ids for _ in range(6)]
        finally:
            other.close()
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_file_corpora_are_shuffled_with_the_seed(tmp_path):
    config = two_sources(tmp_path, (1.0, 0.0))
    tok = ByteTokenizer()
    corpus = token_corpus(config.data, make_source(config.data), tok)
    first = [tok.decode(corpus.sources[0].train(u))[:14] for u in range(5)]
    data = config.data.model_copy(update={"seed": 1})
    other = token_corpus(data, make_source(data), tok)
    assert first != [tok.decode(other.sources[0].train(u))[:14] for u in range(5)]
    assert first != [f"web page {i}. " for i in range(5)]
    # the held-out documents are the same whatever the seed, and never trained on
    train = {tok.decode(corpus.sources[0].train(u)) for u in range(196)}
    val = {tok.decode(corpus.sources[0].val(j)) for j in range(4)}
    assert len(train) == 196 and not train & val
    assert isinstance(corpus.sources[0].train_docs, TokenDocs)


def test_validation_files_replace_the_held_out_share(tmp_path):
    write(tmp_path / "train.jsonl", [f"train {i}" for i in range(60)])
    write(tmp_path / "val.jsonl", [f"val {i}" for i in range(3)])
    source = {"files": [str(tmp_path / "train.jsonl")], "val_files": [str(tmp_path / "val.jsonl")]}
    data = Config.model_validate(
        {"data": {"corpus": "files", "sources": [source], "cache_dir": str(tmp_path / "c")}}
    ).data
    tok = ByteTokenizer()
    (finite,) = token_corpus(data, make_source(data), tok).sources
    assert {tok.decode(finite.train(u)) for u in range(60)} == {f"train {i}" for i in range(60)}
    assert [tok.decode(finite.val(j)) for j in range(4)] == ["val 0", "val 1", "val 2", "val 0"]
    assert make_source(data).held_out == ["val 0", "val 1", "val 2"]


def test_more_workers_than_streams_is_refused(tmp_path):
    config = two_sources(tmp_path, (0.5, 0.5))
    config.data.workers = 3  # two_sources runs 2 streams
    tok = ByteTokenizer()
    with pytest.raises(BirdieError, match="data.workers 3 exceeds data.streams 2"):
        open_pipeline(config.data, make_source(config.data), tok, expand_arms(ARMS, tok.specials),
                      np.ones(1))  # fmt: skip
