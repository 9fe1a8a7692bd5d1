"""``birdie-ssm report``: plots of a run's metrics.jsonl (losses per objective, mixture over time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from birdie_ssm.errors import BirdieError  # noqa: E402
from birdie_ssm.train.metrics import read_metrics  # noqa: E402


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


def _plot_losses(train: list[dict[str, Any]], evals: list[dict[str, Any]], path: Path) -> None:
    fig, (val_ax, train_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps, arms, losses = _series(evals, "val_loss")
    for i, arm in enumerate(arms):
        val_ax.plot(steps, losses[:, i], marker="o", markersize=3, label=arm)
    val_ax.set(title="validation loss per objective", xlabel="step", ylabel="loss")
    if arms:
        val_ax.legend(fontsize="small")
    train_ax.plot([r["step"] for r in train], [_value(r.get("loss")) for r in train])
    train_ax.set(title="training loss", xlabel="step", ylabel="loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_mixture(records: list[dict[str, Any]], path: Path) -> None:
    steps, arms, probs = _series(records, "mixture")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.stackplot(steps, np.nan_to_num(probs).T, labels=arms)
    ax.set(title="objective mixture over time", xlabel="step", ylabel="probability", ylim=(0, 1))
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_rewards(evals: list[dict[str, Any]], path: Path) -> None:
    rewards = [{"step": r["step"], **r["controller"]} for r in evals if "controller" in r]
    steps, classes, values = _series(rewards, "class_rewards")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, name in enumerate(classes):
        ax.plot(steps, values[:, i], marker="o", markersize=3, label=name)
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set(title="controller reward per objective class", xlabel="step", ylabel="reward")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def make_report(run_dir: Path) -> list[Path]:
    """Draw losses per objective, the mixture over time and controller rewards as PNGs in ``run_dir``."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise BirdieError(
            f"no metrics.jsonl in {run_dir}: expected the run directory of a training run"
        )
    records = read_metrics(metrics)
    if not records:
        raise BirdieError(f"{metrics} holds no records: has the run logged a step yet?")
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    paths = [run_dir / "losses.png", run_dir / "mixture.png"]
    _plot_losses(train, evals, paths[0])
    # Training records carry the mixture in use at every logged step; evals only where it changed.
    with_mixture = [r for r in train if "mixture" in r] or evals
    _plot_mixture(with_mixture, paths[1])
    if any(isinstance(r.get("controller", {}).get("class_rewards"), dict) for r in evals):
        paths.append(run_dir / "rewards.png")
        _plot_rewards(evals, paths[-1])
    return paths
