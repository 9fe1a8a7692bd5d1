"""Run an experiment: for every seed, pretrain each run, fine-tune it, evaluate it; summarise."""

from __future__ import annotations

from pathlib import Path

from birdie_ssm.config import Config
from birdie_ssm.experiments.records import RunRecord, SeedRecord, run_dirs
from birdie_ssm.experiments.spec import (
    finetune_config,
    load_spec,
    run_configs,
)
from birdie_ssm.experiments.stages import evaluate_curve, evaluate_run, train_run
from birdie_ssm.experiments.summary import write_summary
from birdie_ssm.tasks import task_settings


def run_experiment(
    file: str | Path,
    overrides: list[str] | None = None,
    output: str | Path | None = None,
    seeds: list[int] | None = None,
) -> list[Path]:
    """Train, fine-tune, evaluate and report every run of experiment ``file`` for every seed
    (``seeds`` replaces the file's list); returns the files written. ``overrides`` apply to
    the pretraining stage of every run (for a run without one, to what stands in for it: its
    fine-tuning stage's model, data and step count)."""
    file = Path(file)
    spec = load_spec(file)
    seeds = list(seeds or spec.seeds)
    tasks = {name: task_settings(name, values) for name, values in spec.tasks.items()}
    ft = spec.finetune
    curve_tasks = {n: task_settings(n, v) for n, v in (ft.curve if ft else {}).items()}
    out = Path(output or spec.output or Path("runs") / spec.name)
    # Every seed's configs (and fine-tuning stages) are checked before anything is written.
    by_seed = {seed: run_configs(spec, file, list(overrides or []), seed) for seed in seeds}
    tuned = {
        (seed, run.name): finetune_config(
            spec, file, run, configs.get(run.name), seed, list(overrides or [])
        )
        for seed, configs in by_seed.items()
        for run in (spec.runs if ft is not None else [])
    }
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, RunRecord] = {}
    total = len(seeds) * len(spec.runs)
    count = 0
    for seed in seeds:
        configs = by_seed[seed]
        for run in spec.runs:
            count += 1
            tag = f"[{count}/{total}] seed {seed} {run.name}"
            dirs = run_dirs(out, spec, seed, run.name)
            rec = SeedRecord()
            last: tuple[Config, Path] | None = None
            if run.pretrain:
                config = configs[run.name]
                parent = None
                if run.init_from:
                    parent = list(run_dirs(out, spec, seed, run.init_from).values())[-1]
                print(f"{tag}: pretraining ({config.train.steps} steps)", flush=True)
                rec.stages["pretrain"] = train_run(config, dirs["pretrain"], parent)
                last = (config, dirs["pretrain"])
            if ft is not None:
                config = tuned[seed, run.name]
                start = dirs["pretrain"] if run.pretrain else None
                print(f"{tag}: fine-tuning ({config.train.steps} steps)", flush=True)
                rec.stages["finetune"] = train_run(config, dirs["finetune"], start)
                if curve_tasks:
                    begin = (start, rec.stages["pretrain"]["steps"]) if start else None
                    rec.curves = evaluate_curve(dirs["finetune"], curve_tasks, begin)
                last = (config, dirs["finetune"])
            assert last is not None
            print(f"{tag}: evaluating", flush=True)
            rec.results = evaluate_run(last[1], tasks)
            described = configs[run.name] if run.pretrain else last[0]  # what the row names
            record = records.setdefault(run.name, RunRecord(described, run.pretrain))
            record.seeds[seed] = rec
    command = " ".join(
        ["birdie-ssm experiment", str(file), *(f"--set {o}" for o in overrides or [])]
        + ([f"--seeds {','.join(map(str, seeds))}"] if seeds != spec.seeds else [])
        + ([f"--output {output}"] if output else [])
    )
    return write_summary(out, spec, command, records)
