"""Where metrics records go: ``train.loggers`` names them (``jsonl``, ``tensorboard``, ``wandb``).

run_dir/metrics.jsonl is always written and is the source of truth (``report``, resuming and the
experiment summaries read it); the other loggers mirror every record into the tools researchers
watch. A logger is anything with ``log(step, record)`` and ``close()``, registered by name with
``@register_logger``; its factory takes a ``LoggerContext``. The optional ones import their
package only when opened and name the extra to install when it is missing.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError
from birdie_ssm.train import rundir


class Logger(Protocol):
    """Receives every metrics record (``kind`` 'train' or 'eval', at ``step``)."""

    def log(self, step: int, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LoggerContext:
    """What a logger may need to open: the run directory, name and config, and a resume point."""

    run_dir: Path
    name: str = "run"
    config: dict[str, Any] = field(default_factory=dict)  # the run's config, as JSON
    resume_step: int | None = None  # a resumed run rewrites the records after this step


@dataclass(frozen=True)
class _Entry:
    factory: Callable[[LoggerContext], Logger]
    package: str | None  # module the logger needs, checked before a run starts
    extra: str | None  # birdie-ssm's extra that installs it


LOGGERS: plugins.Registry[_Entry] = plugins.Registry("logger")


def register_logger(
    name: str, *, package: str | None = None, extra: str | None = None
) -> Callable[[Callable[[LoggerContext], Logger]], Callable[[LoggerContext], Logger]]:
    """Register a logger factory under ``name``; ``package`` is the import it needs (if any)."""

    def add(factory: Callable[[LoggerContext], Logger]) -> Callable[[LoggerContext], Logger]:
        LOGGERS.register(name, _Entry(factory, package, extra), replace=True)
        return factory

    return add


def check_logger(name: str) -> None:
    """Raise a one-line BirdieError if ``name`` is unknown or its package is not installed."""
    entry = LOGGERS.lookup(name)
    if entry.package and importlib.util.find_spec(entry.package) is None:
        install = f"pip install 'birdie-ssm[{entry.extra}]'" if entry.extra else "install it"
        raise BirdieError(
            f"train.loggers: '{name}' needs the package {entry.package}, which is not "
            f"installed: {install}"
        )


def open_logger(name: str, context: LoggerContext) -> Logger:
    """Open the logger registered as ``name``."""
    check_logger(name)
    return LOGGERS[name].factory(context)


def clean(value: Any) -> Any:
    """``value`` with NaN/inf floats as None: JSON has no such numbers, so every reader parses
    it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


# Where a record's fields appear in TensorBoard and W&B, grouped the way people look for them;
# any other field appears as "<kind>/<field>[/<key>...]".
TAGS = {
    ("train", "loss"): "loss/train",
    ("eval", "val_loss"): "loss/val",
    ("train", "lr"): "optim/lr",
    ("train", "tokens_per_s"): "throughput/tokens_per_s",
    ("train", "mfu"): "throughput/mfu",
    ("train", "mixture"): "mixture/requested",
    ("train", "realised_mixture"): "mixture/realised",
    ("eval", "mixture"): "mixture/next",
    ("eval", "controller", "reward"): "reward/total",
    ("eval", "controller", "class_rewards"): "reward/class",
    ("eval", "controller", "arm_rewards"): "reward/arm",
}


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics record, flattened to tags (e.g. 'loss/val/next_token')."""
    kind = str(record.get("kind", "metrics"))
    out: dict[str, float] = {}

    def walk(path: tuple[str, ...], value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk((*path, str(key)), inner)
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            return  # lists, strings, None: not a scalar series
        if not math.isfinite(value):
            return
        for n in range(len(path), 0, -1):  # the longest known prefix names the tag
            tag = TAGS.get((kind, *path[:n]))
            if tag is not None:
                out["/".join((tag, *path[n:]))] = float(value)
                return
        out["/".join((kind, *path))] = float(value)

    for key, value in record.items():
        if key not in ("kind", "step"):
            walk((key,), value)
    return out


@register_logger("jsonl")
class JsonlLogger:
    """Appends each record as one JSON line to run_dir/metrics.jsonl."""

    def __init__(self, context: LoggerContext) -> None:
        self.path = rundir.metrics_path(context.run_dir)

    @classmethod
    def at(cls, path: Path) -> JsonlLogger:
        """A logger appending to the file ``path``."""
        logger = cls.__new__(cls)
        logger.path = Path(path)
        return logger

    def log(self, step: int, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(clean(record)) + "\n")

    def close(self) -> None:
        return None


@register_logger("tensorboard", package="tensorboardX", extra="tensorboard")
class TensorBoardLogger:
    """Scalars of every record into run_dir/tensorboard (``tensorboard --logdir RUN_DIR``)."""

    def __init__(self, context: LoggerContext) -> None:
        from tensorboardX import SummaryWriter

        # A resumed run rewrites the steps after its checkpoint: TensorBoard drops the old ones.
        purge = None if context.resume_step is None else context.resume_step + 1
        self.writer = SummaryWriter(
            str(rundir.logger_dir(context.run_dir, "tensorboard")), purge_step=purge, flush_secs=10
        )

    def log(self, step: int, record: dict[str, Any]) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


@register_logger("wandb", package="wandb", extra="wandb")
class WandbLogger:
    """Every record to Weights & Biases, files under run_dir/wandb.

    Offline unless the environment sets ``WANDB_MODE`` (e.g. ``online``): a run never needs the
    network, and ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads it later. The project is
    ``WANDB_PROJECT`` or 'birdie-ssm'. A resumed run continues the same W&B run (its id is kept
    in run_dir/wandb/run_id); W&B ignores the steps it already has.
    """

    def __init__(self, context: LoggerContext) -> None:
        import wandb

        directory = rundir.logger_dir(context.run_dir, "wandb")
        directory.mkdir(parents=True, exist_ok=True)
        id_file = directory / "run_id"
        if id_file.is_file():
            run_id = id_file.read_text(encoding="utf-8").strip()
        else:
            run_id = secrets.token_hex(4)
            id_file.write_text(run_id, encoding="utf-8")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "birdie-ssm"),
            name=context.name,
            id=run_id,
            resume="allow",
            dir=str(context.run_dir),
            config=context.config,
            mode=os.environ.get("WANDB_MODE", "offline"),
        )

    def log(self, step: int, record: dict[str, Any]) -> None:
        self.run.log(scalars(record), step=step)

    def close(self) -> None:
        self.run.finish()


def _check_names(names: list[str]) -> None:
    """What train.loggers accepts: registered logger names (their packages are checked at start)."""
    for name in names:
        LOGGERS.lookup(name)


# The loggers own what train.loggers accepts (config.TrainConfig composes this check).
plugins.register_config_check("train.loggers", _check_names)
