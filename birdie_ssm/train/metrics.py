"""metrics.jsonl: one JSON record per line, appended as training goes, mirrored to the loggers.

``train`` records: loss, lr, tokens/s, ``mfu`` (model FLOPs utilisation, a fraction; null where
the device's peak is unknown: see train/flops.py), ``mixture`` (requested) and
``realised_mixture`` (each arm's share of the target tokens trained since the previous train
record, this host's rows). ``eval`` records: per-arm ``val_loss``, ``requested_mixture`` and
``realised_mixture`` over the interval since the previous evaluation (all hosts; what the
controller is credited with), the next ``mixture`` and the controller's ``info``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birdie_ssm.train.loggers import JsonlLogger, Logger, LoggerContext, check_logger, open_logger

if TYPE_CHECKING:
    from birdie_ssm.config import Config


class MetricsLog:
    """Appends records to ``run_dir/metrics.jsonl`` and to the other ``loggers`` (first host only).

    metrics.jsonl is written whatever ``loggers`` says. The others are checked now (a missing
    package fails before training starts) and opened at the first record, so a resumed run's
    TensorBoard drops the steps it is about to rewrite.
    """

    def __init__(
        self, path: Path, loggers: Sequence[str] = ("jsonl",), config: Config | None = None
    ) -> None:
        import jax  # here, not at the top: `birdie-ssm report` reads metrics without JAX

        self.path = Path(path)
        self.enabled = jax.process_index() == 0
        self.names = [n for n in dict.fromkeys(loggers) if n != "jsonl"]
        for name in self.names:
            check_logger(name)
        self.config = config
        self.jsonl = JsonlLogger.at(self.path)
        self.others: list[Logger] | None = None
        self.resume_step: int | None = None

    def _open(self) -> list[Logger]:
        if self.others is None:
            context = LoggerContext(
                run_dir=self.path.parent,
                name=self.config.name if self.config is not None else self.path.parent.name,
                config={} if self.config is None else self.config.model_dump(mode="json"),
                resume_step=self.resume_step,
            )
            self.others = [open_logger(name, context) for name in self.names]
        return self.others

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        step = int(record.get("step", 0))
        self.jsonl.log(step, record)
        for logger in self._open():
            logger.log(step, record)

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run rewrites them exactly)."""
        self.resume_step = step
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in read_metrics(self.path) if line.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def close(self) -> None:
        """Flush and close the loggers (metrics.jsonl is closed after every record)."""
        for logger in self.others or []:
            logger.close()
        self.others = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl file (skipping a torn last line)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
