"""Corpus sources: every file format and compression, save_to_disk directories, a Hub name
through a local cache, and each bad input as one line naming the source."""

import gzip
import json

import pytest

from birdie_ssm.config import SourceConfig, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.text.corpus import SourceSet
from birdie_ssm.text.sources import fingerprint, text_batches

DOCS = [f"document {i}: " + "words " * (i % 7 + 1) for i in range(60)]


def read(source: SourceConfig, part="train") -> list[str]:
    return [t for batch in text_batches(source, part) for t in batch]


def write_jsonl(path, docs, field="text", opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({field: d, "id": 1}) + "\n")


def test_every_file_format_and_compression_reads_the_same_documents(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    write_jsonl(tmp_path / "a.jsonl", DOCS)
    write_jsonl(tmp_path / "a.jsonl.gz", DOCS, opener=gzip.open)
    (tmp_path / "a.json").write_text(json.dumps([{"text": d} for d in DOCS]))
    (tmp_path / "a.txt").write_text("\n\n".join(DOCS) + "\n")
    raw = "".join(json.dumps({"text": d}) + "\n" for d in DOCS).encode()
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    pq.write_table(pa.table({"text": DOCS}), tmp_path / "a.parquet")
    for name in ["a.jsonl", "a.jsonl.gz", "a.json", "a.txt", "a.jsonl.zst", "a.parquet"]:
        assert read(SourceConfig(files=[str(tmp_path / name)])) == DOCS, name


def test_globs_read_in_sorted_order(tmp_path):
    write_jsonl(tmp_path / "b.jsonl", DOCS[30:])
    write_jsonl(tmp_path / "a.jsonl", DOCS[:30])
    assert read(SourceConfig(files=[str(tmp_path / "*.jsonl")])) == DOCS


def test_a_saved_dataset_directory_and_its_splits(tmp_path):
    import datasets

    d = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"body": DOCS}),
            "test": datasets.Dataset.from_dict({"body": DOCS[:5]}),
        }
    )
    d.save_to_disk(str(tmp_path / "saved"))
    source = SourceConfig(dataset=str(tmp_path / "saved"), text_field="body", val_split="test")
    assert read(source) == DOCS
    assert read(source, "val") == DOCS[:5]
    with pytest.raises(BirdieError, match="no split 'nope'; splits: train, test"):
        read(source.model_copy(update={"split": "nope"}))
    with pytest.raises(BirdieError, match="text_field 'text' is not a column; columns: body"):
        read(source.model_copy(update={"text_field": "text"}))


def hub_cache(tmp_path, monkeypatch, docs) -> None:
    """A datasets cache holding 'user/tiny' as a download from the Hub leaves it (prepared
    Arrow under ``user___tiny/default/0.0.0/<hash>``), with the Hub unreachable."""
    import datasets

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    write_jsonl(tmp_path / "train.jsonl", docs)
    datasets.load_dataset("json", data_files=str(tmp_path / "train.jsonl"), split="train")
    (prepared,) = [p for p in (cache / "json").glob("*/*/*") if p.is_dir()]
    target = cache / "user___tiny" / "default" / "0.0.0" / prepared.name
    target.mkdir(parents=True)
    for f in prepared.iterdir():
        (target / f.name.replace("json-", "tiny-")).write_bytes(f.read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def test_a_hub_name_loads_from_the_local_cache_offline(tmp_path, monkeypatch):
    hub_cache(tmp_path, monkeypatch, DOCS)
    source = SourceConfig(dataset="user/tiny")
    assert read(source) == DOCS
    with pytest.raises(BirdieError, match="data source 'user/tiny': no split 'validation'"):
        read(source.model_copy(update={"split": "validation"}))
    with pytest.raises(BirdieError, match="data source 'user/tiny': .* no config 'other'"):
        read(source.model_copy(update={"config": "other"}))
    with pytest.raises(BirdieError, match="data source 'nobody/nothing': Hub dataset .*cache"):
        read(SourceConfig(dataset="nobody/nothing"))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'{"text": "a"}\n{"body": "b"}\n', r"'bad.jsonl' at line 2: text_field 'text' is not"),
        (b'{"text": "a"}\n{"text": \n', r"'bad.jsonl' at line 2: is not valid JSON"),
        (b'{"text": "\xff"}\n', r"'bad.jsonl' at line 1: not valid UTF-8"),
    ],
)
def test_bad_records_name_the_file_and_line(tmp_path, content, match):
    (tmp_path / "bad.jsonl").write_bytes(content)
    with pytest.raises(
        BirdieError, match="data source 'mine': file .*" + match.replace("'bad", "bad")
    ):
        read(SourceConfig(name="mine", files=[str(tmp_path / "bad.jsonl")]))


def test_a_corrupt_compressed_file_is_named(tmp_path):
    raw = gzip.compress(b"".join(b'{"text": "doc %d"}\n' % i for i in range(5000)))
    (tmp_path / "c.jsonl.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BirdieError, match=r"file '.*c.jsonl.gz' at line \d+: cannot be read"):
        read(SourceConfig(files=[str(tmp_path / "c.jsonl.gz")]))


def test_a_pattern_matching_nothing_or_an_unknown_format_is_named(tmp_path):
    with pytest.raises(BirdieError, match=r"data source '.*\*.jsonl': .* matches no file"):
        read(SourceConfig(files=[str(tmp_path / "*.jsonl")]))
    with pytest.raises(BirdieError, match=r"file '.*none.jsonl' does not exist"):
        read(SourceConfig(files=[str(tmp_path / "none.jsonl")]))
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(BirdieError, match="unsupported format"):
        read(SourceConfig(files=[str(tmp_path / "x.csv")]))


def test_weights_negative_or_all_zero_are_refused():
    with pytest.raises(BirdieError, match="weight must be >= 0"):
        load_config(None, ["data.corpus=files", "data.sources=[{files: [a], weight: -1}]"])
    with pytest.raises(BirdieError, match="weights are all zero"):
        load_config(None, ["data.corpus=files", "data.sources=[{files: [a], weight: 0}]"])


def test_fingerprint_follows_the_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", DOCS)
    source = SourceConfig(files=[str(tmp_path / "a.jsonl")])
    before = fingerprint(source, "train")
    assert fingerprint(source, "train") == before
    write_jsonl(tmp_path / "a.jsonl", DOCS[:-1])
    assert fingerprint(source, "train") != before


def test_held_out_text_is_every_50th_document(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [f"d{i}" for i in range(120)])
    held = SourceSet([SourceConfig(files=[str(tmp_path / "a.jsonl")])], seed=0).held_out
    assert held == ["d49", "d99"]
