"""An experiment's summary: results.md (runs as rows, tasks as columns, mean ± std over seeds),
results.json (every seed's figures), a plot per task and a learning-curve plot per curve task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdie_ssm.config import Config
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.prompts import objective_classes
from birdie_ssm.evaluation.results import TaskResult
from birdie_ssm.experiments.records import RunRecord, run_dirs

if TYPE_CHECKING:
    from birdie_ssm.experiments.spec import ExperimentSpec

THRESHOLDS = (0.5, 0.9)  # steps-to-X columns of the learning curves


def describe_run(config: Config, pretrained: bool = True) -> str:
    """Architecture and training mixture in a few words."""
    model = config.model
    arch = (
        f"Transformer {model.width}x{model.depth}"
        if model.arch == "transformer"
        else f"SSM {model.mixer} {model.width}x{model.depth}, bidir {model.bidirectional}"
    )
    if not pretrained:
        return f"{arch}; no pretraining (fine-tuning stage only)"
    classes = objective_classes(config)
    mixture = classes[0] if len(classes) == 1 else f"{len(classes)} objectives"
    return f"{arch}; {config.controller.name}: {mixture}"


def seed_std(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The standard deviation over seeds that the table and the plots both show: the sample
    one (ddof 1), as seeds are a sample of the runs one could have had."""
    return np.std(values, axis=axis, ddof=1)


def mean_std(values: list[float]) -> str:
    """``mean ± std`` over seeds (just the mean for one seed)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {float(seed_std(np.asarray(values))):.3f}"


def steps_to(curve: list[TaskResult], threshold: float) -> int | None:
    """The first fine-tuning step whose headline metric reaches ``threshold``."""
    for result in curve:
        if result.headline >= threshold:
            return result.step
    return None


def _steps_cell(record: RunRecord, task: str, threshold: float) -> str:
    reached = [steps_to(s.curves[task], threshold) for s in record.seeds.values()]
    hits = [r for r in reached if r is not None]
    if not hits:
        return "never"
    cell = f"{np.mean(hits):.0f}"
    return cell if len(hits) == len(reached) else f"{cell} ({len(hits)}/{len(reached)} seeds)"


def _minutes(record: RunRecord, stage: str) -> str:
    times = [s.stages[stage]["train_seconds"] for s in record.seeds.values() if stage in s.stages]
    return f"{np.mean(times) / 60:.1f}" if times else "–"


def _markdown(spec: ExperimentSpec, command: str, records: dict[str, RunRecord]) -> str:
    first = next(iter(records.values()))
    seeds = list(first.seeds)
    sample = next(iter(first.seeds.values())).results
    tasks = list(sample)
    lines = [f"# Experiment `{spec.name}`", "", f"Command: `{command}`", ""]
    lines += [f"Seeds: {', '.join(map(str, seeds))}; cells are the mean ± standard deviation "
              "over seeds of each task's headline metric (averaged over its sweep), then the "
              "prompt layout used (see birdie_ssm/evaluation/prompts.py)."]  # fmt: skip
    pre = [r for r in records.values() if r.pretrained]
    if pre:
        stage = next(iter(pre[0].seeds.values())).stages.get("pretrain", {})
        lines[-1] += (f" Pretraining: {stage.get('steps')} steps, {stage.get('tokens', 0):,} "
                      "tokens per run.")  # fmt: skip
    if spec.finetune is not None:
        ft = spec.finetune
        lines[-1] += (f" Fine-tuning (every run alike): {ft.steps} steps at a fixed lr {ft.lr:g}, "
                      f"weight decay {ft.weight_decay:g}, objectives "
                      f"{', '.join(str(m.get('name')) for m in ft.mixture)}.")  # fmt: skip
    lines.append("")
    curve_tasks = list(spec.finetune.curve) if spec.finetune else []
    header = ["run", "model; mixture", "params", "pretrain min", "finetune min"]
    header += [f"{t} ({sample[t].metric})" for t in tasks]
    header += [f"{t}: steps to {x:.0%}" for t in curve_tasks for x in THRESHOLDS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run, record in records.items():
        one = next(iter(record.seeds.values()))
        info = next(iter(one.stages.values()))
        cells = [run, describe_run(record.config, record.pretrained), f"{info['num_params']:,}",
                 _minutes(record, "pretrain"), _minutes(record, "finetune")]  # fmt: skip
        for t in tasks:
            values = [s.results[t].headline for s in record.seeds.values()]
            cells.append(f"{mean_std(values)} ({one.results[t].format})")
        cells += [_steps_cell(record, t, x) for t in curve_tasks for x in THRESHOLDS]
        lines.append("| " + " | ".join(cells) + " |")
    chance = ["chance", "", "", "", "", *(f"{sample[t].chance:.3g}" for t in tasks)]
    chance += [""] * (len(curve_tasks) * len(THRESHOLDS))
    lines += ["| " + " | ".join(chance) + " |", ""]
    for t in tasks:
        r = sample[t]
        values = [p[r.sweep] for p in r.points]
        lines += [f"## {t}: {r.metric} by {r.sweep}", ""]
        lines += ["| run | " + " | ".join(str(v) for v in values) + " |"]
        lines += ["|" + "---|" * (len(values) + 1)]
        for run, record in records.items():
            row = [mean_std([s.results[t].points[i][r.metric] for s in record.seeds.values()])
                   for i in range(len(values))]  # fmt: skip
            lines.append(f"| {run} | " + " | ".join(row) + " |")
        notes: dict[str, list[str]] = {}
        for run, record in records.items():
            for note in next(iter(record.seeds.values())).results[t].notes:
                notes.setdefault(note, []).append(run)
        lines += [f"Note ({', '.join(runs)}): {note}" for note, runs in notes.items()] + [""]
    for t in curve_tasks:
        steps = curve_steps(records, t)
        metric = next(iter(first.seeds.values())).curves[t][0].metric
        lines += [f"## Learning curve: {t} {metric} along fine-tuning", ""]
        lines += ["| run | " + " | ".join(f"step {s}" for s in steps) + " |"]
        lines += ["|" + "---|" * (len(steps) + 1)]
        for run, record in records.items():
            series = _curve_matrix(record, t, steps)
            row = ["–" if np.isnan(series[:, i]).all() else mean_std(list(series[:, i]))
                   for i in range(len(steps))]  # fmt: skip
            lines.append(f"| {run} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def curve_steps(records: dict[str, RunRecord], task: str) -> list[int]:
    """Every fine-tuning step at which any run's curve of ``task`` was measured, ascending."""
    return sorted(
        {c.step for r in records.values() for s in r.seeds.values() for c in s.curves[task]}
    )


def _curve_matrix(record: RunRecord, task: str, steps: list[int]) -> np.ndarray:
    """Seeds x ``steps`` of the curve's headline metric, NaN where a run has no point (a run
    without pretraining has no step-0 point and may run longer)."""
    rows = []
    for seed in record.seeds.values():
        at = {c.step: c.headline for c in seed.curves[task]}
        rows.append([at.get(step, np.nan) for step in steps])
    return np.array(rows, dtype=float)


def _plot_task(path: Path, task: str, records: dict[str, RunRecord]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    r = next(iter(next(iter(records.values())).seeds.values())).results[task]
    xs = [p[r.sweep] for p in r.points]
    for run, record in records.items():
        ys = np.array([[p[r.metric] for p in s.results[task].points]
                       for s in record.seeds.values()])  # fmt: skip
        ax.errorbar(xs, ys.mean(0), yerr=seed_std(ys) if len(ys) > 1 else None, marker="o",
                    capsize=3, label=run)  # fmt: skip
    ax.axhline(r.chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(r.sweep)
    ax.set_ylabel(r.metric)
    ax.set_ylim(-0.02, 1.02)
    seeds = len(next(iter(records.values())).seeds)
    ax.set_title(f"{task} (mean over {seeds} seeds; bars: std)" if seeds > 1 else task)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_curve(path: Path, task: str, records: dict[str, RunRecord]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    chance = metric = None
    steps = curve_steps(records, task)
    for run, record in records.items():
        curves = [s.curves[task] for s in record.seeds.values()]
        ys = _curve_matrix(record, task, steps)
        keep = ~np.isnan(ys).all(axis=0)
        xs = np.array(steps)[keep]
        (line,) = ax.plot(xs, np.nanmean(ys[:, keep], axis=0), marker=".", label=run)
        if len(ys) > 1:
            ax.fill_between(xs, np.nanmin(ys[:, keep], 0), np.nanmax(ys[:, keep], 0), alpha=0.2,
                            color=line.get_color())  # fmt: skip
        chance, metric = curves[0][0].chance, curves[0][0].metric
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel(f"{task} {metric}")
    ax.set_ylim(-0.02, 1.02)
    seeds = len(next(iter(records.values())).seeds)
    ax.set_title(f"{task} along fine-tuning (mean; band: min-max over {seeds} seeds)"
                 if seeds > 1 else f"{task} along fine-tuning (1 seed)", fontsize=9)  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _run_reports(run_dirs: list[Path]) -> list[Path]:
    from birdie_ssm.train.report import make_report

    paths: list[Path] = []
    for run_dir in run_dirs:
        try:
            paths += make_report(run_dir)
        except BirdieError as exc:  # a missing plot must not cost the experiment's results
            print(f"  no report for {run_dir}: {exc}")
    return paths


def _json(records: dict[str, RunRecord]) -> dict[str, Any]:
    def result(r: TaskResult) -> dict[str, Any]:
        return {"headline": r.headline, "format": r.format, "points": r.points}

    return {
        run: {
            "describe": describe_run(record.config, record.pretrained),
            "seeds": {
                str(seed): {
                    "stages": s.stages,
                    "tasks": {t: result(r) for t, r in s.results.items()},
                    "curves": {
                        t: [
                            {"step": c.step, "headline": c.headline, "points": c.points} for c in cs
                        ]
                        for t, cs in s.curves.items()
                    },  # fmt: skip
                }
                for seed, s in record.seeds.items()
            },
        }
        for run, record in records.items()
    }


def write_summary(
    out: Path, spec: ExperimentSpec, command: str, records: dict[str, RunRecord]
) -> list[Path]:
    """Write results.md, results.json, the plots and each run's report; return the paths."""
    md = out / "results.md"
    md.write_text(_markdown(spec, command, records), encoding="utf-8")
    js = out / "results.json"
    js.write_text(json.dumps(_json(records), indent=2) + "\n", encoding="utf-8")
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    first = next(iter(next(iter(records.values())).seeds.values()))
    paths = [md, js, *(_plot_task(plots / f"{t}.png", t, records) for t in first.results)]
    paths += [_plot_curve(plots / f"curve-{t}.png", t, records) for t in first.curves]
    stage_dirs = [d for run in records for seed in records[run].seeds
                  for d in run_dirs(out, spec, seed, run).values() if d.is_dir()]  # fmt: skip
    return paths + _run_reports(stage_dirs)
