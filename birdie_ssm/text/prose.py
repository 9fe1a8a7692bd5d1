"""Built-in real English prose that every Python install ships: no download, no extra package.

Two sources, both read as text (nothing is imported or executed): the language reference
topics behind ``help('if')`` (``pydoc_data/topics.py``) and the docstrings of the standard
library's own modules, classes and functions, parsed with ``ast``. Documents come in a fixed
order (sorted paths, file order within a file), so a given Python version always yields the
same corpus; different Python versions ship slightly different text.
"""

from __future__ import annotations

import ast
import functools
import sysconfig
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
    # Inherited and copied docstrings repeat word for word; keep the first of each, so that a
    # held-out document never reappears in training.
    return tuple(dict.fromkeys(docs))
