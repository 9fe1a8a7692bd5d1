"""An experiment file: pretraining runs, one shared fine-tuning stage, tasks, seeds.

Every run is pretrained on the shared budget (data, steps, seeds), then every run is fine-tuned
by the same ``finetune`` stage (same objectives, steps, learning rate, batch and seed), then
evaluated. A run with ``pretrain: false`` skips pretraining: its one stage is the fine-tuning
stage from random weights, lengthened by the pretraining steps (so it sees the same number of
updates), with the run's ``set`` applied to that stage. Each seed repeats the whole experiment
with ``data.seed`` and ``train.seed`` set to it.

Precedence, the same for every run: the base config, then ``shared``, the seed, the run's own
``set``, and last the command's ``--set`` overrides.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from birdie_ssm.config import Config, apply_override, error_text, load_raw, validate
from birdie_ssm.errors import BirdieError, not_a_file
from birdie_ssm.tasks import TASKS

NAME = r"^[A-Za-z0-9_.-]+$"


class RunSpec(BaseModel):
    """One run: a name (its directory) and config overrides on top of the shared ones."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    set: dict[str, Any] = Field(default_factory=dict)
    pretrain: bool = Field(
        True, description="false: no pretraining; fine-tune from random weights for the "
        "pretraining steps plus the fine-tuning steps (the 'within reach' control)",
    )  # fmt: skip
    init_from: str | None = Field(
        None, description="an earlier run of the file to fine-tune (its own steps and data)"
    )


class FinetuneSpec(BaseModel):
    """The fine-tuning stage every pretrained run goes through, identically."""

    model_config = ConfigDict(extra="forbid")
    mixture: list[dict[str, Any]] = Field(min_length=1, description="objectives.mixture")
    steps: int = Field(ge=1)
    lr: float = Field(gt=0, description="a fixed learning rate (no decay)")
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int | None = Field(None, ge=1)
    seq_len: int | None = Field(None, ge=16)
    set: dict[str, Any] = Field(default_factory=dict, description="further config overrides")
    curve_every: int = Field(0, ge=0, description="evaluate the curve tasks every N steps")
    curve: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="task -> settings of the learning-curve evaluation"
    )

    @model_validator(mode="after")
    def _curve_needs_cadence(self) -> FinetuneSpec:
        if self.curve and not self.curve_every:
            raise ValueError("'curve' needs 'curve_every' (evaluate every N fine-tuning steps)")
        if self.curve_every and not self.curve:
            raise ValueError("'curve_every' needs 'curve': the tasks to evaluate along the way")
        return self


class ExperimentSpec(BaseModel):
    """The experiment file's schema."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    output: str | None = Field(None, description="relative to the working directory")
    base: str | None = Field(
        None, description="config YAML relative to this file; None: quickstart"
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    shared: dict[str, Any] = Field(default_factory=dict)
    runs: list[RunSpec] = Field(min_length=1)
    finetune: FinetuneSpec | None = None
    tasks: dict[str, dict[str, Any]] = Field(default_factory=lambda: {t: {} for t in TASKS})

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
        return seeds

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

    @model_validator(mode="after")
    def _scratch_needs_finetune(self) -> ExperimentSpec:
        scratch = [r.name for r in self.runs if not r.pretrain]
        if scratch and self.finetune is None:
            raise ValueError(f"runs {scratch} have 'pretrain: false' but there is no 'finetune'")
        return self


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment file."""
    path = Path(path)
    if not path.is_file():
        raise BirdieError(f"experiment file '{path}' {not_a_file(path)}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ExperimentSpec.model_validate(raw)
    except yaml.YAMLError as exc:
        raise BirdieError(f"experiment file '{path}' is not valid YAML: {exc}") from None
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in e['loc']) or 'file'}': {error_text(e)}"
            for e in exc.errors()
        )
        raise BirdieError(f"experiment file '{path}': {problems}") from None


def _build(raw: dict[str, Any], assignments: list[tuple[str, Any]], where: str) -> Config:
    raw = copy.deepcopy(raw)
    for key, value in assignments:
        apply_override(raw, f"{key}={json.dumps(value)}")
    try:
        return validate(raw)
    except BirdieError as exc:
        raise BirdieError(f"{where}: {exc}") from None


def _overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    out = []
    for assignment in pairs:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise BirdieError(f"--set expects key=value (e.g. train.steps=100), got {assignment!r}")
        out.append((key.strip(), yaml.safe_load(value)))
    return out


def run_configs(
    spec: ExperimentSpec, file: Path, overrides: list[str], seed: int | None = None
) -> dict[str, Config]:
    """Each pretraining run's config: base, shared overrides, the run's own, then ``overrides``.

    ``seed`` (default: the file's first) sets ``data.seed`` and ``train.seed``. Runs with
    ``pretrain: false`` have no pretraining config and are left out."""
    base = load_raw(None if spec.base is None else file.parent / spec.base)
    seed = spec.seeds[0] if seed is None else seed
    seeded = [("data.seed", seed), ("train.seed", seed)]
    configs = {}
    for run in spec.runs:
        if not run.pretrain:
            continue
        assignments = [("name", run.name), *spec.shared.items(), *seeded, *run.set.items()]
        configs[run.name] = _build(base, assignments + _overrides(overrides), f"run '{run.name}'")
    _check_shared_budget({r.name: configs[r.name] for r in spec.runs if r.name in configs
                          and r.init_from is None})  # fmt: skip
    return configs


def finetune_config(
    spec: ExperimentSpec,
    file: Path,
    run: RunSpec,
    pretrained: Config | None,
    seed: int,
    overrides: list[str] | None = None,
) -> Config:
    """The fine-tuning stage's config for ``run``: its pretraining config (or, for a run with
    ``pretrain: false``, the shared one with the command's ``overrides``, as every pretraining
    run has them) with the stage's objectives, schedule and batch. A ``pretrain: false`` run's
    own ``set`` comes next, then the command's overrides of the keys it sets: as for every
    pretraining run, the command line wins over the run's ``set``."""
    ft = spec.finetune
    assert ft is not None
    if pretrained is None:
        base = load_raw(None if spec.base is None else file.parent / spec.base)
        shared = [*spec.shared.items(), ("data.seed", seed), ("train.seed", seed)]
        pretrained = _build(base, shared + _overrides(overrides or []), f"run '{run.name}'")
    steps = ft.steps + (0 if run.pretrain else pretrained.train.steps)
    every = ft.curve_every or steps
    stage: list[tuple[str, Any]] = [
        ("name", f"{run.name}-finetune"),
        ("objectives.mixture", ft.mixture),
        ("controller.name", "fixed"),
        ("controller.params", {}),
        ("train.steps", steps),
        ("train.lr", ft.lr),
        ("train.min_lr_ratio", 1.0),
        ("train.warmup_steps", ft.warmup_steps),
        ("train.weight_decay", ft.weight_decay),
        ("train.checkpoint_every", every),
        ("train.keep_checkpoints", steps // every + 1),
    ]
    stage += [(f"data.{k}", v) for k in ("batch_size", "seq_len") if (v := getattr(ft, k))]
    stage += list(ft.set.items())
    if not run.pretrain:
        # One precedence for every run: the command line beats the run's own set.
        stage += list(run.set.items())
        stage += [(k, v) for k, v in _overrides(overrides or []) if _names_any(k, run.set)]
    raw = pretrained.model_dump(mode="json")
    return _build(raw, stage, f"run '{run.name}', fine-tuning stage")


def _names_any(key: str, keys: dict[str, Any]) -> bool:
    """Whether ``key`` is one of ``keys``, inside one, or holds one (``model`` and
    ``model.width``)."""
    return any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in keys)


def _check_shared_budget(configs: dict[str, Config]) -> None:
    """Runs must share data, seeds and token budget, or the comparison means nothing."""
    if not configs:
        return
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
