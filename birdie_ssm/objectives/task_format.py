"""Task format: examples laid out exactly as a retrieval task asks its questions (fine-tuning).

The Birdie paper fine-tunes briefly on each task's own format before evaluating it. ``task``
names a registered task (``birdie_ssm.tasks``); every example is one of that task's items, built
by the task's own item builder from the objective's rng, in the form a run tuned on the task is
prompted in (input: the task's prompt; target: its answer): the native form where the task says
``tune_native`` (copying, infilling), the text form otherwise. A run that trained
``task_format`` on task T is prompted in that form for T (evaluation/prompts.py).

The synthesised tasks ignore the document and return all its tokens unused (the pipeline then
reads no further documents); a task cut from documents (``infilling``) masks a span of the
document's first ``passage`` tokens, as the evaluation does with held-out text. The synthesised
tasks write their text with the run's tokenizer (``bind``, called by ``expand_arms``), so they
work under the byte, HF and tiktoken tokenizers alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives.base import Objective, register_objective
from birdie_ssm.objectives.spans import draw_int
from birdie_ssm.tasks import Task, TaskSettings, registered_tasks
from birdie_ssm.text.tokenizer import ByteTokenizer, SpecialTokens, Tokenizer

BYTE_BASE = 256  # the byte tokenizer's base vocabulary (its specials start here)
SIZE_SAMPLES = 8  # items built per sweep point to measure how long that point's examples are


def task_settings_for(task: str | None, overrides: dict[str, Any] | None) -> TaskSettings:
    """The task's settings with ``overrides`` applied; ValueError naming what is wrong."""
    tasks = registered_tasks()
    if task not in tasks:
        raise ValueError(f"parameter 'task' must be one of {', '.join(tasks)}, got {task!r}")
    overrides = dict(overrides or {})
    # Seed, sample count, batch size and prompt format only steer an evaluation.
    shared = {f.name for f in dataclasses.fields(TaskSettings)}
    own = [f.name for f in dataclasses.fields(tasks[task].settings) if f.name not in shared]
    for key in overrides:
        if key in shared:
            raise ValueError(f"setting '{key}' only applies to evaluation, not to task_format")
        if key not in own:
            raise ValueError(
                f"task '{task}' has no setting '{key}' (accepted: {', '.join(own) or 'none'})"
            )
    try:
        return tasks[task].parse(overrides)
    except BirdieError as exc:
        raise ValueError(f"task '{task}': {exc}") from None


@dataclass(frozen=True)
class TaskFormatConfig:
    """``task``: the evaluation task whose items to train on; ``settings``: overrides of its
    evaluation settings, e.g. ``{book_sizes: [4, 8]}`` (a mapping, so lists stay one arm)."""

    task: str | None = None
    settings: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        task_settings_for(self.task, self.settings)


@register_objective("task_format")
class TaskFormat(Objective):
    """The input is an evaluation task's prompt and the target its answer."""

    Config = TaskFormatConfig

    def __init__(self, config: TaskFormatConfig, specials: SpecialTokens, paradigm: int) -> None:
        super().__init__(config, specials, paradigm)
        self.task: Task = registered_tasks()[config.task]
        self.settings = task_settings_for(config.task, config.settings)
        self.points = sorted(set(self.task.points(self.settings)))
        self.sizes: list[int] | None = None
        if self.task.needs_documents or specials.base_size == BYTE_BASE:
            # Items cut from documents need no tokenizer; text items under the byte vocabulary
            # are its UTF-8 bytes. Either way the sizes are known now.
            self.bind(ByteTokenizer())

    def bind(self, tokenizer: Tokenizer) -> None:
        """Write the task's text items with the run's tokenizer (any kind: byte, hf, tiktoken)."""
        super().bind(tokenizer)
        self.sizes = [self._point_size(point) for point in self.points]
        self.largest = max(self.sizes)

    def _sizes(self) -> list[int]:
        if self.sizes is None:
            raise BirdieError(
                f"objective 'task_format' writes task '{self.config.task}' as text and needs the "
                "run's tokenizer: build its arms with expand_arms(..., tokenizer=...)"
            )
        return self.sizes

    def _point_size(self, point: int) -> int:
        """Tokens an example of sweep point ``point`` takes (the longest of a few, where the
        length varies with the draw, as names do in a phone book)."""
        if self.task.needs_documents:  # infilling: the passage, a sentinel in each half
            return self.task.passage(self.settings) + 2
        return max(
            sum(len(part) for part in self._item(point, np.random.default_rng([k, point])))
            for k in range(SIZE_SAMPLES)
        )

    def _item(self, point: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.task.tuned_form is not None:  # the trained form alone (the same arrays, faster)
            return self.task.tuned_form(self.settings, self.tokenizer, point, rng)
        item = self.task.item(self.settings, self.tokenizer, point, rng)
        return item.form(native=self.task.tune_native)

    def min_budget(self) -> int:
        return min(self._sizes()) + 1  # + the paradigm token

    def make(
        self, tokens: np.ndarray, rng: np.random.Generator, budget: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        sizes = self._sizes()
        if budget >= self.largest:  # the common case: every point fits
            fits = self.points
        else:
            fits = [p for p, size in zip(self.points, sizes, strict=True) if size <= budget]
            if not fits:
                return None
        # A single candidate needs no draw, so the rng reaches the item builder untouched (as in
        # the evaluation's sweep_rngs: tests compare the two item for item).
        point = fits[draw_int(rng, 0, len(fits) - 1)] if len(fits) > 1 else fits[0]
        if self.task.needs_documents:
            n = self.task.passage(self.settings)
            if len(tokens) < n:
                return None
            item = self.task.document_item(self.settings, tokens[:n], point, rng, self.specials)
            (inputs, targets), rest = item.form(native=self.task.tune_native), tokens[n:]
        else:
            (inputs, targets), rest = self._item(point, rng), tokens
        if len(inputs) + len(targets) > budget:
            return None
        return inputs, targets, rest
