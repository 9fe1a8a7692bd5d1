"""Built-in real English prose that every Python install ships: no download, no extra package.

Two sources, both read as text (nothing is imported or executed): the language reference
topics behind ``help('if')`` (``pydoc_data/topics.py``) and the docstrings of the standard
library's own modules, classes and functions, parsed with ``ast``. Documents come in a fixed
order (sorted paths, file order within a file), so a given Python version always yields the
same corpus; different Python versions ship slightly different text. Near-duplicates (a
document sharing half its word 8-grams with a longer one) are dropped before the corpus is split,
so that no held-out document is a near copy of a training one.
"""

from __future__ import annotations

import ast
import functools
import sysconfig
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

# Packages whose docstrings are test fixtures, demos or GUI code rather than prose.
_SKIP = {
    "test",
    "tests",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "site-packages",
}
MIN_CHARS = 200  # shorter docstrings are mostly signatures ("Return self.")
NGRAM = 8  # words per n-gram in the near-duplicate test
NEAR_DUPLICATE = 0.5  # share of n-grams above which a document counts as a copy
_DOC_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, _DOC_NODES))]
    docs = (ast.get_docstring(n) for n in nodes)
    return [d for d in docs if d and len(d) >= MIN_CHARS]


def _topics(stdlib: Path) -> list[str]:
    path = stdlib / "pydoc_data" / "topics.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            values = [ast.literal_eval(v) for v in node.value.values]
            return [v for v in values if isinstance(v, str) and len(v) >= MIN_CHARS]
    return []


@functools.cache
def prose_documents() -> tuple[str, ...]:
    """The built-in prose corpus: reference topics, then stdlib docstrings, in a fixed order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p
        for p in stdlib.rglob("*.py")
        if not _SKIP.intersection(p.relative_to(stdlib).parts[:-1])
        and p.relative_to(stdlib).parts[0] != "pydoc_data"
    )
    docs = _topics(stdlib)
    for path in files:
        docs.extend(_docstrings(path))
    # Inherited, copied and lightly edited docstrings repeat; without this, held-out documents
    # reappear (nearly) word for word in training and validation measures recall.
    return tuple(drop_near_duplicates(docs))


def _ngrams(words: list[str], n: int) -> set[int]:
    return {hash(tuple(words[i : i + n])) for i in range(max(1, len(words) - n + 1))}


def drop_near_duplicates(
    docs: Iterable[str], n: int = NGRAM, threshold: float = NEAR_DUPLICATE
) -> list[str]:
    """``docs`` in their order, less each document that shares at least ``threshold`` of its
    word ``n``-grams (whitespace normalised) with one longer document that is kept."""
    docs = list(docs)
    grams = [_ngrams(doc.split(), n) for doc in docs]
    # Longest first, so that each cluster keeps its fullest member and the shared fraction is
    # always measured on the shorter document of a pair (a short text quoted inside a long one
    # counts). Ties go to the earlier document, so the result is deterministic.
    order = sorted(range(len(docs)), key=lambda i: (-len(grams[i]), i))
    postings: defaultdict[int, list[int]] = defaultdict(list)  # n-gram -> kept documents
    kept = []
    for i in order:
        shared = Counter(j for g in grams[i] for j in postings.get(g, ()))
        if shared and shared.most_common(1)[0][1] >= threshold * len(grams[i]):
            continue
        kept.append(i)
        for g in grams[i]:
            postings[g].append(i)
    return [docs[i] for i in sorted(kept)]
