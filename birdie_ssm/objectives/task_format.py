"""Task format: examples laid out exactly as a retrieval task asks its questions (fine-tuning).

The Birdie paper fine-tunes briefly on each task's own format before evaluating it. ``task``
names an evaluation task; every example is one of that task's items, built by the evaluation
module's own item builder from the objective's rng, in the form a native prompt asks it (input:
the task's prompt; target: its answer; see ``Item.form``). A run that trained ``task_format`` on
task T is prompted in the native layout for T (evaluation/prompts.py).

The synthesised tasks ignore the document and return all its tokens unused (the pipeline then
reads no further documents); ``infilling`` masks a span of the document's first ``passage``
tokens, as the evaluation does with held-out text. Objectives are given the special tokens, not
the tokenizer, so the synthesised tasks write their text as UTF-8 bytes and need the byte
tokenizer; ``infilling`` works with any tokenizer.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from birdie_ssm.data.tokenizer import ByteTokenizer, SpecialTokens
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives.base import Objective, register_objective

if TYPE_CHECKING:
    from birdie_ssm.evaluation.runner import Item, TaskSettings

BYTE_BASE = 256  # the byte tokenizer's base vocabulary (its specials start here)
SIZE_SAMPLES = 8  # items built per sweep point to measure how long that point's examples are


@dataclass(frozen=True)
class TaskSpec:
    """A task's settings class, the settings field holding its sweep, and its item builder.

    ``item`` is None for ``infilling``, whose items are cut from document tokens instead."""

    settings: type[TaskSettings]
    sweep: str
    item: Callable[[Any, Any, int, np.random.Generator], Item] | None


@functools.cache
def task_specs() -> dict[str, TaskSpec]:
    """Every evaluation task this objective can train on, by its ``birdie-ssm eval`` name."""
    # Imported here: the evaluation modules import objectives, so a top-level import would cycle.
    from birdie_ssm.evaluation import copying, infilling, mqar, phonebook

    return {
        "phonebook": TaskSpec(phonebook.PhonebookSettings, "book_sizes", phonebook.phonebook_item),
        "multi-phonebook": TaskSpec(
            phonebook.MultiPhonebookSettings, "queries", phonebook.multi_phonebook_item
        ),
        "mqar": TaskSpec(mqar.MqarSettings, "pairs", mqar.mqar_item),
        "copying": TaskSpec(copying.CopyingSettings, "lengths", copying.copying_item),
        "selective-copying": TaskSpec(
            copying.SelectiveCopyingSettings, "lengths", copying.selective_copying_item
        ),
        "infilling": TaskSpec(infilling.InfillingSettings, "spans", None),
    }


def task_settings_for(task: str | None, overrides: dict[str, Any] | None) -> TaskSettings:
    """The task's settings with ``overrides`` applied; ValueError naming what is wrong."""
    from birdie_ssm.evaluation.runner import TaskSettings, parse_settings

    specs = task_specs()
    if task not in specs:
        raise ValueError(f"parameter 'task' must be one of {', '.join(specs)}, got {task!r}")
    overrides = dict(overrides or {})
    # Seed, sample count, batch size and prompt format only steer an evaluation.
    shared = {f.name for f in dataclasses.fields(TaskSettings)}
    own = [f.name for f in dataclasses.fields(specs[task].settings) if f.name not in shared]
    for key in overrides:
        if key in shared:
            raise ValueError(f"setting '{key}' only applies to evaluation, not to task_format")
        if key not in own:
            raise ValueError(
                f"task '{task}' has no setting '{key}' (accepted: {', '.join(own) or 'none'})"
            )
    try:
        return parse_settings(specs[task].settings, overrides)
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
        self.spec = task_specs()[config.task]
        self.settings = task_settings_for(config.task, config.settings)
        self.points = sorted(set(getattr(self.settings, self.spec.sweep)))
        self.tokenizer: ByteTokenizer | None = None
        if self.spec.item is not None:
            if specials.base_size != BYTE_BASE:
                raise BirdieError(
                    f"objective 'task_format' writes task '{config.task}' as UTF-8 bytes and "
                    f"needs data.tokenizer=byte (this vocabulary has {specials.base_size} base "
                    "ids); only task 'infilling' works with any tokenizer"
                )
            self.tokenizer = ByteTokenizer()
        self.sizes = [self._point_size(point) for point in self.points]

    def _point_size(self, point: int) -> int:
        """Tokens an example of sweep point ``point`` takes (the longest of a few, where the
        length varies with the draw, as names do in a phone book)."""
        if self.spec.item is None:  # infilling: the passage, a sentinel in each half
            return self.settings.passage + 2
        return max(
            sum(len(part) for part in self._item(point, np.random.default_rng([k, point])))
            for k in range(SIZE_SAMPLES)
        )

    def _item(self, point: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        item = self.spec.item(self.settings, self.tokenizer, point, rng)
        return item.form(native=True)

    def min_budget(self) -> int:
        return min(self.sizes) + 1  # + the paradigm token

    def make(
        self, tokens: np.ndarray, rng: np.random.Generator, budget: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        fits = [p for p, size in zip(self.points, self.sizes, strict=True) if size <= budget]
        if not fits:
            return None
        # A single candidate needs no draw, so the rng reaches the item builder untouched (as in
        # the evaluation's sweep_rngs: tests compare the two item for item).
        point = fits[int(rng.integers(len(fits)))] if len(fits) > 1 else fits[0]
        if self.spec.item is None:
            from birdie_ssm.evaluation.infilling import infilling_item

            n = self.settings.passage
            if len(tokens) < n:
                return None
            item = infilling_item(tokens[:n], point, rng, self.specials)
            (inputs, targets), rest = item.form(native=True), tokens[n:]
        else:
            (inputs, targets), rest = self._item(point, rng), tokens
        if len(inputs) + len(targets) > budget:
            return None
        return inputs, targets, rest
