"""File corpora: the held-out validation documents are never trained on."""

import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.text.corpus import MIN_DOCUMENTS, FileSource, distinct_passages
from birdie_ssm.text.tokenizer import ByteTokenizer


@pytest.mark.parametrize("n", [2, 3, 10, 49, 50, 51, 99, 100, 120])
def test_train_and_validation_are_disjoint_and_cover_the_corpus(n):
    texts = [f"document {i}" for i in range(n)]
    source = FileSource(texts)
    train = {source.train(c) for c in range(3 * n)}
    val = {source.val(i) for i in range(3 * n)}
    assert train and val and not train & val
    assert train | val == set(texts)
    assert len(val) == max(1, n // 50)


def test_blank_documents_do_not_count_towards_the_split():
    source = FileSource(["a", "  ", "", "b"])
    assert {source.train(0), source.val(0)} == {"a", "b"}
    assert source.train(0) != source.val(0)


@pytest.mark.parametrize("texts", [["only one"], ["only one", "   ", ""]])
def test_a_corpus_too_small_to_split_is_a_clear_error(texts):
    with pytest.raises(BirdieError) as info:
        FileSource(texts)
    message = str(info.value)
    assert "\n" not in message and f"at least {MIN_DOCUMENTS}" in message
    assert "validation" in message


def test_passages_are_disjoint_stretches_of_n_tokens_round_robin_over_texts():
    words = [f"long{i:03d}" for i in range(60)]  # 7 bytes each: 5 words with spaces hold 32
    texts = [" ".join(words), "tiny one", "other short text", "x" * 40, "and a last one"]
    pieces = distinct_passages(texts, ByteTokenizer(), 32)
    # The long text gives 12 stretches of 5 words (4 words are 31 bytes: too few); the short
    # texts are joined until they hold 32 bytes; the x's stand alone. Round robin over texts.
    stretches = [" ".join(words[k : k + 5]) for k in range(0, 60, 5)]
    joined = "tiny one\nother short text\nand a last one"
    assert pieces == [stretches[0], "x" * 40, joined, *stretches[1:]]


def test_a_malformed_data_file_is_one_line_and_nothing_is_logged(tmp_path, capfd):
    from birdie_ssm.config import SourceConfig
    from birdie_ssm.text.sources import text_batches

    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(BirdieError) as info:
        list(text_batches(SourceConfig(files=[str(path)]), "train"))
    assert f"file '{path}' at line 2: is not valid JSON" in str(info.value)
    assert "\n" not in str(info.value)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
