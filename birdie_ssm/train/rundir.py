"""A run directory's layout: where each part lives, whether a directory holds a run, and its
``config.yaml``. Every module that reads or writes a run finds its parts here.

``<run>/config.yaml`` the resolved config (what a resume and an evaluation rebuild the run from),
``checkpoints/<step>/`` Orbax checkpoints, ``metrics.jsonl`` the training and evaluation records,
``eval/`` evaluation results, ``tokenizer/`` a copy of the tokenizer's files, ``tensorboard/``
and ``wandb/`` the loggers' files; ``birdie-ssm report`` draws its PNGs at the top. An
experiment's stage adds ``train_done.json`` and ``curve/`` (experiments/stages.py). An export
directory (``birdie-ssm export``) holds ``model.safetensors`` and ``config.json`` instead, and
is read wherever a run is.
"""

from __future__ import annotations

from pathlib import Path

from birdie_ssm.config import Config, dump_config, load_config

EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.json"


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is an export directory (it holds model.safetensors and config.json)."""
    return (Path(path) / EXPORT_WEIGHTS).is_file() and (Path(path) / EXPORT_CONFIG).is_file()


def config_path(run_dir: str | Path) -> Path:
    """The run's resolved config (an export's config.json)."""
    return Path(run_dir) / (EXPORT_CONFIG if is_export(run_dir) else "config.yaml")


def checkpoints_dir(run_dir: str | Path) -> Path:
    """The folder of the run's checkpoints, one sub-folder per step."""
    return Path(run_dir) / "checkpoints"


def metrics_path(run_dir: str | Path) -> Path:
    """The run's metrics.jsonl."""
    return Path(run_dir) / "metrics.jsonl"


def eval_dir(run_dir: str | Path) -> Path:
    """The folder of the run's evaluation results."""
    return Path(run_dir) / "eval"


def tokenizer_dir(run_dir: str | Path) -> Path:
    """The folder of the run's copy of its tokenizer's files (a moved run reads them there)."""
    return Path(run_dir) / "tokenizer"


def logger_dir(run_dir: str | Path, logger: str) -> Path:
    """The folder a logger (``tensorboard``, ``wandb``) writes its own files into."""
    return Path(run_dir) / logger


def is_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run: a config.yaml and a checkpoints folder."""
    return config_path(run_dir).is_file() and checkpoints_dir(run_dir).is_dir()


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """The steps of the checkpoints the run holds, ascending (none: an empty list)."""
    directory = checkpoints_dir(run_dir)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def read_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The run's config.yaml, validated, with ``overrides`` (``key=value``) applied."""
    return load_config(config_path(run_dir), overrides)


def write_config(config: Config, run_dir: str | Path) -> Path:
    """Write ``config`` as the run's config.yaml; returns its path."""
    path = Path(run_dir) / "config.yaml"
    dump_config(config, path)
    return path
