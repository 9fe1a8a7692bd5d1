"""Evaluation: the harness (retrieval tasks, batched generation, prompt layouts, results) and
its public API.

- ``load(run_dir, step=None)``: a trained run (``EvalContext``).
- ``evaluate(run, items, scorer="exact", ...)``: your own ``{"prompt", "answer"}`` items, scored
  by a built-in scorer (``SCORERS``) or a callable; an ``EvalResult`` with every ``Prediction``.
- ``read_items(path)``: such items from a JSONL file.
- ``evaluate_task`` / ``run_task``: a registered retrieval task (``birdie_ssm.tasks``), as a
  ``TaskResult`` (per-sweep-point metrics and a sample of predictions).
- ``birdie_ssm.evaluation.lm_eval``: a model for lm-evaluation-harness (``pip install
  birdie-ssm[lm-eval]``).
"""

from birdie_ssm.evaluation.api import (
    SCORERS,
    EvalResult,
    Prediction,
    evaluate,
    load,
    read_items,
)
from birdie_ssm.evaluation.results import TaskResult, read_result
from birdie_ssm.evaluation.runner import EvalContext, evaluate_task, run_task

__all__ = [
    "SCORERS",
    "EvalContext",
    "EvalResult",
    "Prediction",
    "TaskResult",
    "evaluate",
    "evaluate_task",
    "load",
    "read_items",
    "read_result",
    "run_task",
]
