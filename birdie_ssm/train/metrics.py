"""metrics.jsonl: one JSON record per line, appended as training goes.

``train`` records: loss, lr, tokens/s, ``mixture`` (requested) and ``realised_mixture`` (each
arm's share of the target tokens trained since the previous train record, this host's rows).
``eval`` records: per-arm ``val_loss``, ``requested_mixture`` and ``realised_mixture`` over the
interval since the previous evaluation (all hosts; what the controller is credited with), the
next ``mixture`` and the controller's ``info``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf: write them as null so every reader can parse the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """Appends records to ``run_dir/metrics.jsonl`` (on the first host only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.enabled = jax.process_index() == 0

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(record)) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run rewrites them exactly)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in read_metrics(self.path) if line.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file (skipping a torn last line)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
