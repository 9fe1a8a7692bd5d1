"""How an evaluation prompt is laid out for a trained model: the one place that chooses it.

A model is prompted the way it was trained (see pipeline/packing.py: ``input + [sep] +
target``). Three layouts exist:

- ``native``: the run trained one of the objectives whose layout the task can be asked in
  (``Task.native``: mqar <-> associative_recall, copying <-> copying, selective-copying <->
  selective_copying, infilling <-> infilling; the first of them the run trained, the most
  native), or it trained the task itself through ``task_format`` (a fine-tuning run, which
  wins): ``[paradigm(objective), input..., sep]``, read bidirectionally; the model generates
  the target.
- ``prefix``: the run trained prefix_lm: ``[paradigm(prefix_lm), context..., sep]``, read
  bidirectionally where the model has bidirectional layers; the model continues the text.
- ``causal``: the run trained next_token only: ``[paradigm(next_token), sep] + context`` with
  only the first two tokens as the prefix, as next-token examples were packed; the model
  continues the text.

``auto`` picks the first of native, prefix, causal that the run's mixture supports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from birdie_ssm.config import Config
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives import arms
from birdie_ssm.tasks.base import FORMATS
from birdie_ssm.text.tokenizer import SpecialTokens

FormatName = Literal["auto", "native", "prefix", "causal"]
TASK_FORMAT = "task_format"  # the objective that trains on an evaluation task's own items


@dataclass(frozen=True)
class PromptFormat:
    """A resolved layout: its kind, the paradigm token it starts with, and the objective named."""

    kind: Literal["native", "prefix", "causal"]
    paradigm: int
    objective: str

    @property
    def prefix_len(self) -> int | None:
        """What ``models.decode.generate`` takes: None = whole prompt bidirectional."""
        return 2 if self.kind == "causal" else None


def objective_classes(config: Config) -> list[str]:
    """Objective classes of a run in paradigm order (the order ``expand_arms`` numbers them)."""
    return arms.objective_classes(config.objectives.mixture)


def format_tasks(config: Config) -> set[str]:
    """The evaluation tasks a run trained in their own format (its ``task_format`` entries)."""
    tasks: set[str] = set()
    for entry in config.objectives.mixture:
        if entry.name == TASK_FORMAT:
            tasks.update(arms.as_values(entry.params.get("task")))
    return tasks


def choose_format(
    config: Config,
    specials: SpecialTokens,
    native: str | Sequence[str] | None = None,
    requested: str = "auto",
    task: str | None = None,
) -> PromptFormat:
    """The layout for a run and a task whose native objectives are ``native``, most native
    first (None or empty: text only).

    ``requested`` forces one layout; it must be one the run was trained on. A run that trained
    ``task`` through ``task_format`` is prompted natively with that objective's paradigm.
    """
    if requested not in FORMATS:
        raise BirdieError(f"format '{requested}' is not one of {', '.join(FORMATS)}")
    natives = [native] if isinstance(native, str) else list(native or ())
    if task is not None and task in format_tasks(config):
        natives = [TASK_FORMAT]
    classes = objective_classes(config)
    trained = [name for name in natives if name in classes]
    candidates = {
        "native": trained[0] if trained else None,
        "prefix": "prefix_lm" if "prefix_lm" in classes else None,
        "causal": "next_token" if "next_token" in classes else None,
    }
    order = ["native", "prefix", "causal"] if requested == "auto" else [requested]
    for kind in order:
        objective = candidates[kind]
        if objective is not None:
            return PromptFormat(kind, specials.paradigm(classes.index(objective)), objective)
    needs = {"native": " or ".join(natives) or "a native objective (this task has none)",
             "prefix": "prefix_lm",
             "causal": "next_token"}  # fmt: skip
    wanted = " or ".join(needs[k] for k in order)
    raise BirdieError(
        f"cannot prompt this run in format '{requested}': its mixture has no {wanted} "
        f"(it trained {', '.join(classes)})"
    )


def objective_format(config: Config, specials: SpecialTokens, objective: str) -> PromptFormat:
    """The native layout of ``objective`` (``[paradigm(objective), input..., sep]``), for a run
    that trained it; a BirdieError names the objectives the run did train otherwise."""
    classes = objective_classes(config)
    if objective not in classes:
        raise BirdieError(
            f"this run did not train objective '{objective}', so it has no layout for it "
            f"(it trained {', '.join(classes)})"
        )
    return PromptFormat("native", specials.paradigm(classes.index(objective)), objective)


def render(fmt: PromptFormat, specials: SpecialTokens, tokens: np.ndarray) -> np.ndarray:
    """The prompt ids for ``tokens`` (the task's context, or its native input) in ``fmt``."""
    tokens = np.asarray(tokens, np.int32)
    if fmt.kind == "causal":
        return np.concatenate([[fmt.paradigm, specials.sep], tokens]).astype(np.int32)
    return np.concatenate([[fmt.paradigm], tokens, [specials.sep]]).astype(np.int32)
