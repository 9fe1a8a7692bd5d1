"""The built-in prose corpus: real English from the Python install, split without overlap."""

from birdie_ssm.config import load_config
from birdie_ssm.text.corpus import make_source
from birdie_ssm.text.prose import prose_documents


def test_prose_is_english_and_distinct():
    docs = prose_documents()
    assert len(docs) > 500 and sum(map(len, docs)) > 500_000
    assert len(set(docs)) == len(docs)
    words = " ".join(docs[:50]).split()
    assert sum(w.lower() in {"the", "a", "of", "is", "to"} for w in words) > 0.05 * len(words)


def test_prose_corpus_is_selectable_deterministic_and_held_out_disjoint():
    source = make_source(load_config(None, ["data.corpus=prose"]).data)
    again = make_source(load_config(None, ["data.corpus=prose"]).data)
    other = make_source(load_config(None, ["data.corpus=prose", "data.seed=1"]).data)
    train = [source.train(i) for i in range(len(prose_documents()))]
    val = {source.val(i) for i in range(100)}
    assert train[:20] == [again.train(i) for i in range(20)]
    assert train[:20] != [other.train(i) for i in range(20)]  # the seed orders training
    assert val == {other.val(i) for i in range(100)}  # ... but never changes the held-out set
    assert val and not val & set(train)
