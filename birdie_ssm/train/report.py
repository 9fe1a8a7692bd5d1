"""``birdie-ssm report``: plots of a run's metrics.jsonl.

losses.png (validation loss per objective and training loss, nats/token), mixture.png (the
controller's decisions as steps, and the mixture each interval really trained), rewards.png
(controller reward per objective class, one panel each, clipped rewards marked). Steps are on
a symlog axis: early evaluations (0, 2, 10, ...) stay apart while late ones still fit.

Colours follow the objectives: one hue per objective class (the arm name before ``[``), a
darker or lighter shade of it per parameter setting, so a mixture of 15 arms stays readable;
legends sit outside the axes, clear of the curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from birdie_ssm.errors import BirdieError  # noqa: E402
from birdie_ssm.train import rundir  # noqa: E402
from birdie_ssm.train.metrics import read_metrics  # noqa: E402

UNIT = "nats/token"
MARKERS = "osD^v<>pPX*h"
LINESTYLES = ["-", "--", "-.", ":"]


def objective_class(arm: str) -> str:
    """The objective an arm runs: its name before the parameter list (``infilling[...]``)."""
    return arm.split("[", 1)[0]


def class_colours(classes: list[str]) -> dict[str, tuple[float, float, float]]:
    """One distinct hue per objective class (tab10 up to 10 classes, evenly spread beyond)."""
    if len(classes) <= 10:
        hues = [mcolors.to_rgb(f"C{i}") for i in range(len(classes))]
    else:
        hues = [mcolors.hsv_to_rgb((i / len(classes), 0.75, 0.85)) for i in range(len(classes))]
    return {c: tuple(float(v) for v in h) for c, h in zip(classes, hues, strict=True)}


def arm_colours(arms: list[str]) -> dict[str, tuple[float, float, float]]:
    """Each arm's colour: its class's hue, shaded from dark to light across the class's arms."""
    classes = list(dict.fromkeys(objective_class(a) for a in arms))
    hues = class_colours(classes)
    colours = {}
    for cls in classes:
        members = [a for a in arms if objective_class(a) == cls]
        base = np.array(hues[cls])
        for j, arm in enumerate(members):
            # -0.45 (towards black) .. +0.45 (towards white); one arm keeps the hue itself
            f = 0.0 if len(members) == 1 else -0.45 + 0.9 * j / (len(members) - 1)
            shade = base * (1 + f) if f < 0 else base + (1 - base) * f
            colours[arm] = tuple(float(v) for v in shade)
    return colours


def _legend_outside(ax: Any, count: int) -> None:
    """The legend to the right of ``ax`` (in columns when long), never over the data."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0, ncol=1 if count <= 16 else 2)  # fmt: skip


def _value(x: Any) -> float:
    # metrics.jsonl writes NaN as null.
    return float("nan") if x is None else float(x)


def _series(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Steps, names and a [steps, names] array from the dict field ``key`` of ``records``."""
    records = [r for r in records if isinstance(r.get(key), dict)]
    names = list(dict.fromkeys(name for r in records for name in r[key]))
    steps = np.array([r["step"] for r in records])
    values = np.array([[_value(r[key].get(n)) for n in names] for r in records]).reshape(
        len(records), len(names)
    )
    return steps, names, values


def _step_axis(ax: Any, steps: np.ndarray | list[float], ticks: bool = False) -> None:
    """Steps on a symlog x axis (linear up to 1, then logarithmic), from 0.

    ``ticks``: label the x axis at ``steps`` themselves (the evaluation steps) when few enough.
    """
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, max(1.0, float(np.max(steps))) * 1.15 if len(steps) else 1.0)
    ax.set_xlabel("step (symlog)")
    ax.grid(True, which="major", alpha=0.3)
    marks = sorted({int(x) for x in steps})
    if ticks and 0 < len(marks) <= 12:
        # Where symlog puts them (linear to 1, one decade per unit after): keep labels apart.
        where = [x if x <= 1 else 1 + np.log10(x) for x in marks]
        span = max(where[-1], 1e-9)  # the axis starts at 0
        kept = [len(marks) - 1]  # the last step always
        for i in range(len(marks) - 2, -1, -1):
            if where[kept[-1]] - where[i] >= 0.06 * span:
                kept.append(i)
        marks = [marks[i] for i in sorted(kept)]
        ax.set_xticks(marks, [str(x) for x in marks], fontsize="small")


def run_name(run_dir: Path) -> str:
    """The run's ``name`` from its config.yaml, with the directory's when they differ."""
    name = None
    config = rundir.config_path(run_dir)
    if config.is_file():
        try:
            name = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("name")
        except yaml.YAMLError:
            name = None
    if not name:
        return run_dir.resolve().name
    return name if name == run_dir.resolve().name else f"{name} ({run_dir.resolve().name})"


def _plot_losses(
    train: list[dict[str, Any]], evals: list[dict[str, Any]], title: str, path: Path
) -> None:
    # Validation on top, training below: the legend goes right of the validation panel.
    fig, (val_ax, train_ax) = plt.subplots(2, 1, figsize=(11, 8.4))
    steps, arms, losses = _series(evals, "val_loss")
    colours = arm_colours(arms)
    classes = list(dict.fromkeys(objective_class(a) for a in arms))
    seen: dict[str, int] = {}
    for i, arm in enumerate(arms):
        cls = objective_class(arm)
        k = seen[cls] = seen.get(cls, -1) + 1  # the arm's place within its class
        val_ax.plot(
            steps,
            losses[:, i],
            color=colours[arm],
            marker=MARKERS[classes.index(cls) % len(MARKERS)],
            linestyle=LINESTYLES[k % len(LINESTYLES)],
            markersize=4,
            label=arm,
        )
    val_ax.set(title="validation loss per objective", ylabel=f"loss ({UNIT})")
    _step_axis(val_ax, steps, ticks=True)
    if arms:
        _legend_outside(val_ax, len(arms))
    train_steps = [r["step"] for r in train]
    train_ax.plot(train_steps, [_value(r.get("loss")) for r in train], marker=".", markersize=3,
                  color="0.25")  # all objectives together: no objective's colour  # fmt: skip
    train_ax.set(title="training loss (mean over each log window)", ylabel=f"loss ({UNIT})")
    _step_axis(train_ax, train_steps)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _stack_steps(ax: Any, steps: np.ndarray, probs: np.ndarray, arms: list[str], where: str):
    colours = arm_colours(arms)
    ax.stackplot(steps, np.nan_to_num(probs).T, labels=arms, colors=[colours[a] for a in arms],
                 step=where, edgecolor="white", linewidth=0.3)  # fmt: skip
    ax.set(ylabel="share", ylim=(0, 1))
    _step_axis(ax, steps, ticks=True)


def _plot_mixture(
    decisions: list[dict[str, Any]],
    evals: list[dict[str, Any]],
    last_step: int,
    title: str,
    path: Path,
) -> None:
    """Requested mixture as steps from step 0 (each decision holds until the next one)."""
    steps, arms, probs = _series(decisions, "mixture")
    # A decision holds until the next; the last one until the end of the run.
    end = max(last_step, int(steps[-1]) if len(steps) else 0)
    if len(steps) and steps[0] > 0:  # before the first logged decision: its mixture, from 0
        steps, probs = np.concatenate([[0], steps]), np.concatenate([probs[:1], probs])
    if len(steps) and end > steps[-1]:
        steps, probs = np.concatenate([steps, [end]]), np.concatenate([probs, probs[-1:]])
    r_steps, r_arms, realised = _series(evals, "realised_mixture")
    panels = 2 if len(r_steps) else 1
    fig, axes = plt.subplots(panels, 1, figsize=(10, 3.6 * panels), sharex=True, squeeze=False)
    _stack_steps(axes[0, 0], steps, probs, arms, "post")
    axes[0, 0].set_title(
        "requested mixture (the controller's decisions; each holds until the next)"
    )
    if panels == 2:
        # Each eval's realised share covers the interval since the previous evaluation.
        order = [r_arms.index(a) for a in arms if a in r_arms]
        x = np.concatenate([[0], r_steps])
        y = np.concatenate([realised[:1], realised])[:, order]
        _stack_steps(axes[1, 0], x, y, [r_arms[i] for i in order], "pre")
        axes[1, 0].set_title("realised mixture (share of target tokens trained in each interval)")
    axes[-1, 0].set_xlim(0, max(1.0, float(end)) * 1.05)
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    _legend_outside(axes[0, 0], len(arms))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _plot_rewards(evals: list[dict[str, Any]], title: str, path: Path) -> None:
    """One panel per objective class; rewards clipped at +-1 drawn as red crosses."""
    rewards = [{"step": r["step"], **r["controller"]} for r in evals if "controller" in r]
    steps, classes, values = _series(rewards, "class_rewards")
    hues = class_colours(classes)
    cols = min(3, len(classes))
    rows = -(-len(classes) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.0 * rows), sharex=True, sharey=True, squeeze=False
    )
    saturated_any = False
    for i, name in enumerate(classes):
        ax = axes.flat[i]
        v = values[:, i]
        ax.plot(steps, v, marker="o", markersize=3, color=hues[name])
        saturated = np.isclose(np.abs(v), 1.0)
        if saturated.any():
            saturated_any = True
            ax.plot(steps[saturated], v[saturated], "X", color="red", markersize=9)
        for bound in (-1.0, 1.0):
            ax.axhline(bound, color="red", linewidth=0.7, linestyle=":")
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set(title=f"{name} ({int(saturated.sum())} clipped)", ylim=(-1.15, 1.15))
        _step_axis(ax, steps, ticks=True)
        if i % cols == 0:
            ax.set_ylabel("reward")
    for ax in axes.flat[len(classes) :]:
        ax.set_visible(False)
    note = "red X = saturated, clipped at ±1" if saturated_any else "none clipped at ±1"
    fig.suptitle(f"{title}: controller reward per objective class ({note})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def make_report(run_dir: Path) -> list[Path]:
    """Draw losses per objective, the mixture over time and controller rewards as PNGs in
    ``run_dir``."""
    run_dir = Path(run_dir)
    metrics = rundir.metrics_path(run_dir)
    if not metrics.is_file():
        raise BirdieError(
            f"no metrics.jsonl in {run_dir}: expected the run directory of a training run"
        )
    records = read_metrics(metrics)
    if not records:
        raise BirdieError(f"{metrics} holds no records: has the run logged a step yet?")
    title = run_name(run_dir)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    paths = [run_dir / "losses.png", run_dir / "mixture.png"]
    _plot_losses(train, evals, title, paths[0])
    # The controller's decisions are the eval records' mixtures; without evals, what training used.
    decisions = [r for r in evals if isinstance(r.get("mixture"), dict)] or [
        r for r in train if isinstance(r.get("mixture"), dict)
    ]
    last_step = max(int(r.get("step", 0)) for r in records)
    _plot_mixture(decisions, evals, last_step, title, paths[1])
    if any(isinstance(r.get("controller", {}).get("class_rewards"), dict) for r in evals):
        paths.append(run_dir / "rewards.png")
        _plot_rewards(evals, title, paths[-1])
    return paths
