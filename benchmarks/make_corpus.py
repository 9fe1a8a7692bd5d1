"""Write a JSONL corpus of real text nobody here wrote: the source files of the installed Python
packages and standard library, and their docstrings, one document per file or docstring.

    python benchmarks/make_corpus.py corpus.jsonl --mb 1100

Files come in sorted order (the same install gives the same corpus). When the install holds less
text than ``--mb``, the documents are written again, pass after pass (each pass's documents are
prefixed with the pass number, so no two documents are identical), and the script says so.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

MAX_FILE = 1 << 20  # bigger .py files are generated tables, not prose or code anyone wrote


def python_files() -> list[Path]:
    """Every .py file of the standard library and the installed packages, once, sorted."""
    roots = {Path(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib")}
    found = {p.resolve() for root in roots for p in root.rglob("*.py") if p.is_file()}
    return sorted(p for p in found if p.stat().st_size <= MAX_FILE)


def documents(path: Path) -> Iterator[str]:
    """The file's source, then its docstrings."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    if not source.strip():
        return
    yield source
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc and len(doc) > 80:
                yield doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the JSONL file to write")
    parser.add_argument("--mb", type=float, default=100.0, help="size to write, in MB")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    target = int(args.mb * 1e6)
    files = python_files()
    out = Path(args.output)
    partial = out.with_name(out.name + ".partial")
    written, docs, passes = 0, 0, 0
    with partial.open("w", encoding="utf-8") as f:
        while written < target:
            passes += 1
            before = written
            for path in files:
                for text in documents(path):
                    if passes > 1:
                        text = f"# pass {passes}\n{text}"
                    line = json.dumps({"text": text, "path": str(path)}) + "\n"
                    f.write(line)
                    written += len(line)
                    docs += 1
                    if written >= target:
                        break
                if written >= target:
                    break
            if written == before:
                raise SystemExit("no Python source files found")
    partial.replace(out)
    unique = " (the install's text repeated: passes beyond the first are prefixed)"
    print(
        f"wrote {out}: {written / 1e6:.0f} MB, {docs} documents from {len(files)} files, "
        f"{passes} pass{'es' + unique if passes > 1 else ''}"
    )


if __name__ == "__main__":
    main()
