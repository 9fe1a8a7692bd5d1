"""The built-in prose corpus: real English from the Python install, split without overlap."""

from birdie_ssm.config import load_config
from birdie_ssm.text.corpus import make_source
from birdie_ssm.text.prose import drop_near_duplicates, prose_documents


def _eight_grams(text):
    words = text.split()
    return {tuple(words[i : i + 8]) for i in range(len(words) - 7)}


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


def test_no_held_out_prose_document_is_a_near_copy_of_a_training_one():
    # Checked pair by pair, independently of the corpus code: before near-duplicates were
    # removed, 4 held-out documents shared 48-80% of their 8-grams with one training document.
    source = make_source(load_config(None, ["data.corpus=prose"]).data)
    n = len(prose_documents())
    train = [_eight_grams(source.train(i)) for i in range(n)]
    for index in range(n // 50):
        held = _eight_grams(source.val(index))
        for grams in train:
            shared = len(held & grams) / max(1, min(len(held), len(grams)))
            assert shared < 0.5, source.val(index)[:80]


def test_near_duplicates_go_the_longest_copy_stays_and_order_holds():
    words = [f"w{i}" for i in range(100)]
    long = " ".join(words)
    other = " ".join(f"x{i}" for i in range(40))
    respaced = "\n".join(words[:50]) + "  "  # identical to a part of `long` up to whitespace
    edited = " ".join(words[:20] + ["a"] + words[21:40] + ["b"] + words[41:60])  # 37/53 shared
    distinct = " ".join(words[:20] + [f"y{i}" for i in range(40)])  # 13 of 53 shared
    docs = [respaced, other, edited, long, distinct, other]
    assert drop_near_duplicates(docs) == [other, long, distinct]
    assert drop_near_duplicates(docs, threshold=0.8) == [other, edited, long, distinct]
