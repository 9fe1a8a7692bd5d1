"""What an experiment's runs produced, and where each stage of a run lives on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdie_ssm.config import Config
from birdie_ssm.evaluation.results import TaskResult
from birdie_ssm.experiments.spec import ExperimentSpec


@dataclass
class SeedRecord:
    """What one seed of one run produced: its stages' training records and its results."""

    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> train_done
    results: dict[str, TaskResult] = field(default_factory=dict)
    curves: dict[str, list[TaskResult]] = field(default_factory=dict)


@dataclass
class RunRecord:
    """A run over every seed: the config that describes it (its pretraining stage, or its only
    stage) and one record per seed."""

    config: Config
    pretrained: bool
    seeds: dict[int, SeedRecord] = field(default_factory=dict)


def run_dirs(out: Path, spec: ExperimentSpec, seed: int, run: str) -> dict[str, Path]:
    """The stage directories of one run and seed: ``pretrain`` and, with a fine-tuning stage,
    ``finetune`` (the last one is the one evaluated)."""
    base = out / f"seed{seed}" / run
    if spec.finetune is None:
        return {"pretrain": base}
    return {"pretrain": base / "pretrain", "finetune": base / "finetune"}
