"""Side-by-side experiments: train several runs on one budget, evaluate each, tabulate and plot.

An experiment file names a base config, overrides every run shares (data, seeds, token budget),
the runs (each a mapping of dotted config keys to values) and the tasks with their settings.
Runs train one after another into ``output/<run>``; the runner is resumable: a finished run
(``train_done.json``) is not trained again, an interrupted one resumes from its checkpoint, and
a task whose result file matches the settings and checkpoint is not evaluated again. A run
with ``init_from`` fine-tunes an earlier run of the file (e.g. on a task-like mixture) and is
exempt from the shared-budget check.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from birdie_ssm.config import Config, apply_override, load_config, load_raw, validate
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.results import TaskResult, read_result, result_path
from birdie_ssm.evaluation.runner import EvalContext, TaskSettings, settings_dict
from birdie_ssm.evaluation.tasks import TASKS, run_task, task_settings

DONE = "train_done.json"


class RunSpec(BaseModel):
    """One run: a name (its directory) and config overrides on top of the shared ones."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    set: dict[str, Any] = Field(default_factory=dict)
    init_from: str | None = Field(
        None, description="an earlier run of the file to fine-tune (its own steps and data)"
    )


class ExperimentSpec(BaseModel):
    """The experiment file's schema."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    output: str | None = Field(None, description="relative to the working directory")
    base: str | None = Field(
        None, description="config YAML relative to this file; None: quickstart"
    )
    shared: dict[str, Any] = Field(default_factory=dict)
    runs: list[RunSpec] = Field(min_length=1)
    tasks: dict[str, dict[str, Any]] = Field(default_factory=lambda: {t: {} for t in TASKS})

    @field_validator("runs")
    @classmethod
    def _distinct(cls, runs: list[RunSpec]) -> list[RunSpec]:
        names = [r.name for r in runs]
        if len(set(names)) != len(names):
            raise ValueError(f"run names must be distinct, got {names}")
        for i, run in enumerate(runs):
            if run.init_from is not None and run.init_from not in names[:i]:
                raise ValueError(f"run '{run.name}': init_from must name an earlier run")
        return runs


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment file."""
    path = Path(path)
    if not path.is_file():
        raise BirdieError(f"experiment file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ExperimentSpec.model_validate(raw)
    except yaml.YAMLError as exc:
        raise BirdieError(f"experiment file '{path}' is not valid YAML: {exc}") from None
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in e['loc']) or 'file'}': {e['msg']}" for e in exc.errors()
        )
        raise BirdieError(f"experiment file '{path}': {problems}") from None


def run_configs(spec: ExperimentSpec, file: Path, overrides: list[str]) -> dict[str, Config]:
    """Each run's config: base, then shared overrides, the run's own, then ``overrides``."""
    base = load_raw(None if spec.base is None else file.parent / spec.base)
    configs = {}
    for run in spec.runs:
        raw = copy.deepcopy(base)
        raw["name"] = run.name
        for key, value in [*spec.shared.items(), *run.set.items()]:
            apply_override(raw, f"{key}={json.dumps(value)}")
        for assignment in overrides:
            apply_override(raw, assignment)
        try:
            configs[run.name] = validate(raw)
        except BirdieError as exc:
            raise BirdieError(f"run '{run.name}': {exc}") from None
    _check_shared_budget({r.name: configs[r.name] for r in spec.runs if r.init_from is None})
    return configs


def _check_shared_budget(configs: dict[str, Config]) -> None:
    """Runs must share data, seeds and token budget, or the comparison means nothing."""
    first_name, first = next(iter(configs.items()))
    for name, config in configs.items():
        for key in ("data", "train.steps", "train.seed"):
            mine, theirs = _get(config, key), _get(first, key)
            if mine != theirs:
                raise BirdieError(
                    f"runs '{first_name}' and '{name}' differ in '{key}'; an experiment's runs "
                    "share data, seeds and token budget (set them under 'shared')"
                )


def _get(config: Config, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def train_run(config: Config, run_dir: Path, init_from: Path | None = None) -> dict[str, Any]:
    """Train one run to completion (resuming a partial one); returns what ``train_done.json`` holds.

    ``init_from``: a trained run whose parameters this one starts from (fine-tuning).
    """
    from birdie_ssm.train.trainer import Trainer

    done = run_dir / DONE
    saved = run_dir / "config.yaml"
    if saved.is_file() and load_config(saved) != config:
        raise BirdieError(
            f"'{run_dir}' holds a run with a different config; delete it or choose another "
            "--output to run this experiment"
        )
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    checkpoints = run_dir / "checkpoints"
    resume = checkpoints.is_dir() and any(checkpoints.iterdir())
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # interrupted before its first checkpoint: start it again
    start = time.perf_counter()
    trainer = Trainer(config, run_dir, resume=resume, init_from=None if resume else init_from)
    try:
        losses = trainer.fit()
    finally:
        trainer.close()
    info = {
        "steps": config.train.steps,
        "tokens": trainer.tokens_seen,
        "num_params": trainer.num_params,
        "train_seconds": round(time.perf_counter() - start, 1),
        "resumed": resume,
        "final_val_loss": losses,
    }
    done.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def evaluate_run(
    run_dir: Path, tasks: dict[str, TaskSettings], log: Callable[[str], None] = print
) -> dict[str, TaskResult]:
    """Evaluate one trained run on every task, reusing result files that are still current."""
    ctx: EvalContext | None = None
    results = {}
    step = json.loads((run_dir / DONE).read_text(encoding="utf-8"))["steps"]
    for name, settings in tasks.items():
        path = result_path(run_dir, name)
        if path.is_file():
            old = read_result(path)
            if old.settings == settings_dict(settings) and old.step == step:
                results[name] = old
                continue
        ctx = ctx or EvalContext.load(run_dir)
        results[name] = run_task(ctx, name, settings)
        log(f"  {name}: {results[name].metric} {results[name].headline:.3f} "
            f"({results[name].format} format, {results[name].seconds:.0f} s)")  # fmt: skip
    return results


def run_experiment(
    file: str | Path, overrides: list[str] | None = None, output: str | Path | None = None
) -> list[Path]:
    """Train, evaluate and report every run of experiment ``file``; returns the files written."""
    from birdie_ssm.evaluation.summary import write_summary

    file = Path(file)
    spec = load_spec(file)
    configs = run_configs(spec, file, list(overrides or []))
    tasks = {name: task_settings(name, values) for name, values in spec.tasks.items()}
    out = Path(output or spec.output or Path("runs") / spec.name)
    out.mkdir(parents=True, exist_ok=True)
    trained, results = {}, {}
    for i, run in enumerate(spec.runs, 1):
        name, config = run.name, configs[run.name]
        start = f" from {run.init_from}" if run.init_from else ""
        print(
            f"[{i}/{len(configs)}] {name}: training{start} ({config.train.steps} steps)", flush=True
        )
        parent = out / run.init_from if run.init_from else None
        trained[name] = train_run(config, out / name, parent)
        print(f"[{i}/{len(configs)}] {name}: evaluating", flush=True)
        results[name] = evaluate_run(out / name, tasks)
    command = " ".join(
        ["birdie-ssm experiment", str(file), *(f"--set {o}" for o in overrides or [])]
        + ([f"--output {output}"] if output else [])
    )
    return write_summary(out, spec.name, command, configs, trained, results)
