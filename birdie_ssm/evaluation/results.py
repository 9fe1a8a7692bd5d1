"""A task's result: per-sweep-point metrics and a sample of per-item predictions, printed as a
table and stored as JSON (``run_dir/eval/<task>@<key>.json``, the key naming the checkpoint and
everything else that sets the result apart, so that no result overwrites another)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from birdie_ssm.errors import BirdieError
from birdie_ssm.train import rundir


@dataclass
class TaskResult:
    """What one task measured on one checkpoint; ``metric`` is the headline column."""

    task: str
    sweep: str
    metric: str
    format: str
    points: list[dict[str, Any]]
    settings: dict[str, Any]
    step: int
    seconds: float = 0.0
    chance: float = 0.0  # the headline metric of a guesser that ignores the context
    notes: list[str] = field(default_factory=list)
    # Per item: point, prompt, answer, prediction (as text) and its scores; by default the first
    # few per sweep point, every item when evaluated with ``all_predictions``.
    predictions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headline(self) -> float:
        """The headline metric averaged over the sweep."""
        return float(np.mean([p[self.metric] for p in self.points]))

    def table(self) -> str:
        """A plain-text table: one row per sweep point."""
        columns = list(self.points[0])
        cells = [[_cell(p[c]) for c in columns] for p in self.points]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = [
            f"{self.task}  (step {self.step}, format {self.format}, "
            f"chance {self.metric} ~{self.chance:.3g}, {self.seconds:.1f} s)",
            "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)),
        ]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def show_predictions(self, n: int) -> str:
        """The first ``n`` stored predictions, one block each (what ``eval --show`` prints)."""
        return format_predictions(self.predictions[:n])


def format_predictions(records: list[dict[str, Any]]) -> str:
    """Stored prediction records as readable text: prompt (its end), answer, prediction, score."""
    lines = []
    for r in records:
        prompt = r["prompt"] if len(r["prompt"]) <= 160 else "..." + r["prompt"][-157:]
        scores = "  ".join(f"{k} {_cell(v)}" for k, v in r.get("scores", {}).items())
        head = f"[{r['point']}] " if "point" in r else ""
        lines += [
            f"{head}prompt:     {prompt!r}",
            f"  answer:     {r['answer']!r}",
            f"  prediction: {r['prediction']!r}" + (f"   ({scores})" if scores else ""),
        ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def result_path(run_dir: str | Path, task: str, key: str | None = None) -> Path:
    """Where a result of a run lives: ``run_dir/eval/<task>@<key>.json`` (``result_key``)."""
    return rundir.eval_dir(run_dir) / (f"{task}@{key}.json" if key else f"{task}.json")


_SAFE_KEY = re.compile(r"[A-Za-z0-9_.=,+\-\[\]]{1,80}")


def result_key(parts: dict[str, Any]) -> str:
    """``name=value,...`` of ``parts`` in their order (values as compact JSON, strings bare);
    a key too long or not filename-safe becomes a hash of them (the file records them too)."""
    texts = []
    for name, value in parts.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        texts.append(f"{name}={text}")
    key = ",".join(texts)
    if _SAFE_KEY.fullmatch(key):
        return key
    blob = json.dumps(parts, sort_keys=True, default=str)
    return "h" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def items_result_path(
    run_dir: str | Path, items_file: str | Path, scorer: str, step: int, options: dict[str, Any]
) -> Path:
    """Where the result of ``eval --items FILE`` lives: ``eval/custom-<stem>@<key>.json``, the
    key naming the step, the scorer, the file's contents (a digest) and every ``--set`` option."""
    digest = hashlib.sha256(Path(items_file).read_bytes()).hexdigest()[:10]
    parts = {"step": step, "scorer": scorer, "items": digest} | dict(sorted(options.items()))
    return result_path(run_dir, f"custom-{Path(items_file).stem}", result_key(parts))


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as JSON to ``path`` (creating its folder) through a temporary file, so an
    interrupted write leaves no partial file; an OSError becomes one BirdieError naming it."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise BirdieError(f"could not write '{path}': {exc.strerror or exc}") from None
    return path


def save_result(result: TaskResult, path: str | Path) -> Path:
    """Write ``result`` as JSON to ``path`` (creating its folder); returns the path."""
    return write_json(asdict(result) | {"headline": result.headline}, path)


def read_result(path: str | Path) -> TaskResult:
    """A result written by ``save_result``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data.pop("headline", None)
    return TaskResult(**data)
