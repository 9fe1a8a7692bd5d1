"""The stages of one run: train (pretrain or fine-tune), evaluate, evaluate along a learning curve.

Every stage is resumable: a finished training stage leaves ``train_done.json`` and is not run
again, an interrupted one resumes from its checkpoint, and an evaluation whose result file
matches the settings and checkpoint is not run again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from birdie_ssm.config import Config, load_config, same_run
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.results import TaskResult, read_result, result_path, save_result
from birdie_ssm.evaluation.runner import (
    EvalContext,
    evaluate_task,
    own_settings,
    task_result_key,
)
from birdie_ssm.tasks import TaskSettings, settings_dict
from birdie_ssm.train import rundir

DONE = "train_done.json"


def train_run(config: Config, run_dir: Path, init_from: Path | None = None) -> dict[str, Any]:
    """Train one stage to completion (resuming a partial one); returns what ``train_done.json``
    holds. ``init_from``: a trained run whose parameters this one starts from (fine-tuning)."""
    from birdie_ssm.train.trainer import Trainer

    done = run_dir / DONE
    saved = rundir.config_path(run_dir)
    if saved.is_file() and not same_run(load_config(saved), config):
        raise BirdieError(
            f"'{run_dir}' holds a run with a different config; delete it or choose another "
            "--output to run this experiment"
        )
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    resume = bool(rundir.checkpoint_steps(run_dir))
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
        "num_params": trainer.run.num_params,
        "train_seconds": round(time.perf_counter() - start, 1),
        "resumed": resume,
        "final_val_loss": losses,
    }
    done.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _load(run_dir: Path, step: int | None) -> EvalContext:
    from birdie_ssm.train.loading import load_run

    run = load_run(run_dir, step)
    return EvalContext(run.model, run.config, run.tokenizer, run_dir, run.step)


def _current(path: Path, settings: TaskSettings, step: int) -> TaskResult | None:
    if not path.is_file():
        return None
    old = read_result(path)
    return old if old.settings == settings_dict(settings) and old.step == step else None


def evaluate_run(
    run_dir: Path, tasks: dict[str, TaskSettings], log: Callable[[str], None] = print
) -> dict[str, TaskResult]:
    """Evaluate a run's last checkpoint on every task, reusing result files still current.
    Results are kept where ``birdie-ssm eval`` keeps them (``runner.result_file``), so that an
    evaluation under other settings never replaces the experiment's."""
    step = json.loads((run_dir / DONE).read_text(encoding="utf-8"))["steps"]
    config = _config(run_dir)
    ctx: EvalContext | None = None
    results = {}
    for name, settings in tasks.items():
        key = task_result_key(own_settings(config, name), settings_dict(settings), step)
        path = result_path(run_dir, name, key)
        old = _current(path, settings, step)
        if old is not None:
            results[name] = old
            continue
        ctx = ctx or _load(run_dir, None)
        results[name] = evaluate_task(ctx, name, settings)
        save_result(results[name], path)
        log(f"  {name}: {results[name].metric} {results[name].headline:.3f} "
            f"({results[name].format} format, {results[name].seconds:.0f} s)")  # fmt: skip
    return results


def curve_path(run_dir: Path, task: str, step: int) -> Path:
    """Where the learning-curve result of ``task`` at checkpoint ``step`` lives."""
    return run_dir / "curve" / f"{task}-{step:07d}.json"


def evaluate_curve(
    run_dir: Path,
    tasks: dict[str, TaskSettings],
    start: tuple[Path, int] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, list[TaskResult]]:
    """Evaluate every checkpoint of a fine-tuning run on ``tasks`` (one result per step).

    ``start``: the run it was initialised from and that run's last step, evaluated as step 0
    in this run's prompt layout (what the pretrained model knows before fine-tuning)."""
    points: list[tuple[Path, int, int]] = [
        (run_dir, s, s) for s in rundir.checkpoint_steps(run_dir)
    ]
    if start is not None:
        points.insert(0, (start[0], start[1], 0))
    curves: dict[str, list[TaskResult]] = {name: [] for name in tasks}
    for source, step, at in points:
        ctx: EvalContext | None = None
        for name, settings in tasks.items():
            path = curve_path(run_dir, name, at)
            old = _current(path, settings, at)
            if old is None:
                if ctx is None:
                    ctx = _load(source, step)
                    if source != run_dir:  # prompt the start model as the fine-tuned run will be
                        ctx = EvalContext(ctx.model, _config(run_dir), ctx.tokenizer, run_dir, 0)
                    ctx.step = at
                old = evaluate_task(ctx, name, settings)
                save_result(old, path)
                log(f"  curve step {at}: {name} {old.metric} {old.headline:.3f}")
            curves[name].append(old)
    return curves


def _config(run_dir: Path) -> Config:
    return rundir.read_config(run_dir)
