"""The registry of retrieval tasks: name -> settings class and evaluation function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.copying import (
    CopyingSettings,
    SelectiveCopyingSettings,
    evaluate_copying,
    evaluate_selective_copying,
)
from birdie_ssm.evaluation.infilling import InfillingSettings, evaluate_infilling
from birdie_ssm.evaluation.mqar import MqarSettings, evaluate_mqar
from birdie_ssm.evaluation.phonebook import (
    MultiPhonebookSettings,
    PhonebookSettings,
    evaluate_multi_phonebook,
    evaluate_phonebook,
)
from birdie_ssm.evaluation.results import TaskResult, write_result
from birdie_ssm.evaluation.runner import EvalContext, TaskSettings, parse_settings


@dataclass(frozen=True)
class Task:
    """A task's settings class and the function that evaluates a model on it."""

    settings: type[TaskSettings]
    evaluate: Callable[[EvalContext, Any], TaskResult]


TASKS: dict[str, Task] = {
    "phonebook": Task(PhonebookSettings, evaluate_phonebook),
    "multi-phonebook": Task(MultiPhonebookSettings, evaluate_multi_phonebook),
    "mqar": Task(MqarSettings, evaluate_mqar),
    "copying": Task(CopyingSettings, evaluate_copying),
    "selective-copying": Task(SelectiveCopyingSettings, evaluate_selective_copying),
    "infilling": Task(InfillingSettings, evaluate_infilling),
}


def get_task(name: str) -> Task:
    """The task called ``name``; unknown names list the accepted ones."""
    if name not in TASKS:
        raise BirdieError(f"unknown task '{name}' (accepted: {', '.join(TASKS)})")
    return TASKS[name]


def task_settings(name: str, values: dict[str, Any] | Sequence[str]) -> TaskSettings:
    """Validated settings of task ``name`` from a mapping or ``key=value`` strings."""
    return parse_settings(get_task(name).settings, values)


def run_task(ctx: EvalContext, name: str, settings: TaskSettings) -> TaskResult:
    """Evaluate ``ctx``'s model on task ``name`` and write ``run_dir/eval/<name>.json``."""
    result = get_task(name).evaluate(ctx, settings)
    write_result(result, ctx.run_dir)
    return result
