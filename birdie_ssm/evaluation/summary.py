"""An experiment's summary: results.md (runs as rows, tasks as columns), results.json, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from birdie_ssm.config import Config
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.prompts import objective_classes
from birdie_ssm.evaluation.results import TaskResult


def describe_run(config: Config) -> str:
    """Architecture and training mixture in a few words."""
    model = config.model
    arch = (
        f"Transformer {model.width}x{model.depth}"
        if model.arch == "transformer"
        else f"SSM {model.mixer} {model.width}x{model.depth}, bidir {model.bidirectional}"
    )
    classes = objective_classes(config)
    mixture = classes[0] if len(classes) == 1 else f"{len(classes)} objectives"
    return f"{arch}; {config.controller.name}: {mixture}"


def _markdown(
    name: str,
    command: str,
    configs: dict[str, Config],
    trained: dict[str, dict[str, Any]],
    results: dict[str, dict[str, TaskResult]],
) -> str:
    tasks = list(next(iter(results.values())))
    first = next(iter(configs.values()))
    tokens = first.train.steps * first.data.batch_size * first.data.seq_len
    lines = [
        f"# Experiment `{name}`",
        "",
        f"Command: `{command}`",
        "",
        f"Every run: {first.train.steps} steps of {first.data.batch_size} x {first.data.seq_len} "
        f"tokens ({tokens:,} tokens), corpus {first.data.corpus}, tokenizer {first.data.tokenizer}, "
        f"seed {first.train.seed}. Cells: the task's headline metric averaged over its sweep, "
        "then the prompt format used (see birdie_ssm/evaluation/prompts.py).",
        "",
    ]
    sample = {t: next(iter(results.values()))[t] for t in tasks}
    header = ["run", "model; mixture", "params", "train min"]
    header += [f"{t} ({sample[t].metric})" for t in tasks]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run, config in configs.items():
        info = trained[run]
        cells = [
            run,
            describe_run(config),
            f"{info['num_params']:,}",
            f"{info['train_seconds'] / 60:.1f}",
        ]
        cells += [f"{results[run][t].headline:.3f} ({results[run][t].format})" for t in tasks]
        lines.append("| " + " | ".join(cells) + " |")
    chance = ["chance", "", "", "", *(f"{sample[t].chance:.3g}" for t in tasks)]
    lines += ["| " + " | ".join(chance) + " |", ""]
    for t in tasks:
        r = sample[t]
        values = [p[r.sweep] for p in r.points]
        lines += [f"## {t}: {r.metric} by {r.sweep}", ""]
        lines += ["| run | " + " | ".join(str(v) for v in values) + " |"]
        lines += ["|" + "---|" * (len(values) + 1)]
        for run in configs:
            row = [f"{p[r.metric]:.3f}" for p in results[run][t].points]
            lines.append(f"| {run} | " + " | ".join(row) + " |")
        notes: dict[str, list[str]] = {}
        for run in configs:
            for note in results[run][t].notes:
                notes.setdefault(note, []).append(run)
        lines += [f"Note ({', '.join(runs)}): {note}" for note, runs in notes.items()] + [""]
    return "\n".join(lines)


def _plot(path: Path, task: str, results: dict[str, dict[str, TaskResult]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for run, by_task in results.items():
        r = by_task[task]
        ax.plot(
            [p[r.sweep] for p in r.points], [p[r.metric] for p in r.points], marker="o", label=run
        )
    ax.axhline(r.chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(r.sweep)
    ax.set_ylabel(r.metric)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(task)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _run_reports(run_dirs: list[Path]) -> list[Path]:
    from birdie_ssm.evaluation.report import make_report

    paths: list[Path] = []
    for run_dir in run_dirs:
        try:
            paths += make_report(run_dir)
        except BirdieError as exc:  # a missing plot must not cost the experiment's results
            print(f"  no report for {run_dir}: {exc}")
    return paths


def write_summary(
    out: Path,
    name: str,
    command: str,
    configs: dict[str, Config],
    trained: dict[str, dict[str, Any]],
    results: dict[str, dict[str, TaskResult]],
) -> list[Path]:
    """Write results.md, results.json, one plot per task and each run's report; return paths."""
    md = out / "results.md"
    md.write_text(_markdown(name, command, configs, trained, results), encoding="utf-8")
    data = {
        run: {
            "describe": describe_run(configs[run]),
            **trained[run],
            "tasks": {
                t: {"headline": r.headline, "format": r.format, "points": r.points}
                for t, r in results[run].items()
            },  # fmt: skip
        }
        for run in configs
    }
    js = out / "results.json"
    js.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    tasks = list(next(iter(results.values())))
    paths = [md, js, *(_plot(plots / f"{t}.png", t, results) for t in tasks)]
    return paths + _run_reports([out / run for run in configs])
