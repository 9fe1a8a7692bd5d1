"""What a task is, and the one registry of them.

A ``Task`` is everything about a retrieval task that does not depend on a trained model: its
settings (with the sweep), how an item is built, how an answer is scored, its headline metric,
its chance level, and the objectives whose layout it can be prompted in (``native``). The
evaluation harness (``birdie_ssm.evaluation``) prompts a model with the items and scores the
answers; the ``task_format`` objective trains on the same items. Both read this registry.

An item is a pure function of ``(settings, tokenizer, sweep point, rng)`` (``Task.item``), or, for
a task cut out of documents (infilling), of ``(settings, passage tokens, sweep point, rng,
specials)`` (``Task.document_item``), the passages taken from the documents handed to
``Task.items``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic
import yaml

from birdie_ssm import plugins
from birdie_ssm.config import error_text
from birdie_ssm.errors import BirdieError
from birdie_ssm.text.tokenizer import SpecialTokens, Tokenizer

# Prompt layouts a task can be asked for (evaluation/prompts.py resolves them against a run).
FORMATS = ("auto", "native", "prefix", "causal")
MAX_DOCUMENTS_PER_PASSAGE = 1000


@dataclass(frozen=True)
class Item:
    """One question: the text-form context and answer, and optionally a native form (the layout
    of the task's native objective, or the one ``task_format`` trains, see ``Task.tune_native``)."""

    context: np.ndarray
    answer: np.ndarray
    point: int  # the sweep value this item belongs to (book size, length, ...)
    native_input: np.ndarray | None = None
    native_answer: np.ndarray | None = None

    @property
    def has_native(self) -> bool:
        return self.native_input is not None and self.native_answer is not None

    def form(self, native: bool) -> tuple[np.ndarray, np.ndarray]:
        """(what the model reads, what it should generate) in the text or the native form.

        An item without a native form is natively its text form: a ``task_format`` run trains
        on exactly that (see objectives/task_format.py)."""
        if native and self.native_input is not None and self.native_answer is not None:
            return self.native_input, self.native_answer
        return self.context, self.answer


@dataclass
class TaskSettings:
    """Settings every task shares; tasks subclass this with their own sweep and sizes."""

    seed: int = 0
    samples: int = 32  # items per sweep point
    batch_size: int = 32  # rows per decoding call (one of them is a shape-fixing filler)
    format: str = "auto"  # auto, native, prefix or causal (see evaluation/prompts.py)

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch_size < 2 or self.seed < 0:
            raise ValueError("samples must be >= 1, batch_size >= 2 and seed >= 0")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")


def check_sweep(name: str, values: list[int], low: int, high: int) -> None:
    """Raise ValueError unless ``values`` is a non-empty list of integers in [low, high]."""
    if not values or not all(low <= v <= high for v in values):
        raise ValueError(f"{name} must be a non-empty list of integers in [{low}, {high}]")


def sweep_rngs(
    settings: TaskSettings, points: Sequence[int]
) -> Iterator[tuple[int, int, np.random.Generator]]:
    """``(point, index, rng)`` for ``samples`` items per sweep point, the rng seeded by
    ``(seed, point, index)``: every item is a pure function of those three."""
    for point in points:
        for index in range(settings.samples):
            yield point, index, np.random.default_rng([settings.seed, point, index])


def parse_settings(
    cls: type[TaskSettings], values: dict[str, Any] | Sequence[str], task: str | None = None
) -> TaskSettings:
    """Task settings from a mapping or ``key=value`` strings (values read as YAML); ``task``
    names the task in errors."""
    if not isinstance(values, dict):
        pairs = {}
        for text in values:
            key, sep, raw = text.partition("=")
            if not sep or not key.strip():
                raise BirdieError(f"--set expects key=value (e.g. samples=16), got {text!r}")
            try:
                # A value starting with '#' (a number layout) is text, not a YAML comment.
                text = raw.strip()
                pairs[key.strip()] = yaml.safe_load(raw) if text and text[0] != "#" else text
            except yaml.YAMLError:
                pairs[key.strip()] = raw  # not YAML: the type check below names the key
        values = pairs
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise BirdieError(
            f"unknown setting '{unknown[0]}' for "
            f"{f'task {task!r}' if task else 'this task'} (accepted: {', '.join(names)})"
        )
    try:
        return pydantic.TypeAdapter(cls).validate_python(dict(values))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        where = f"invalid task setting '{key}'" if key else "invalid task settings"
        raise BirdieError(f"{where}: {error_text(first)}") from None
    except ValueError as exc:
        raise BirdieError(f"invalid task settings: {exc}") from None


def settings_dict(settings: TaskSettings) -> dict[str, Any]:
    """Settings as plain JSON-able data (what a result file records)."""
    return dataclasses.asdict(settings)


# -- scoring helpers -------------------------------------------------------------------------


def text_of(tokenizer: Tokenizer, ids: np.ndarray) -> str:
    """The text of ``ids`` up to the first special token (a generated answer's readable part)."""
    ids = np.asarray(ids, np.int64)
    special = np.flatnonzero(tokenizer.specials.is_special(ids))
    return tokenizer.decode(ids[: special[0]] if len(special) else ids)


def token_accuracy(predicted: np.ndarray, answer: np.ndarray) -> float:
    """Fraction of the answer's positions the prediction gets right (missing tokens are wrong)."""
    answer = np.asarray(answer)
    if len(answer) == 0:
        return 1.0
    got = np.asarray(predicted)[: len(answer)]
    return float(np.sum(got == answer[: len(got)])) / len(answer)


def exact_match(predicted: np.ndarray, answer: np.ndarray) -> float:
    """1.0 when the prediction starts with the whole answer."""
    answer, predicted = np.asarray(answer), np.asarray(predicted)
    return float(len(predicted) >= len(answer) and np.array_equal(predicted[: len(answer)], answer))


def text_guess(tokenizer: Tokenizer, item: Item, predicted: np.ndarray) -> tuple[str, str]:
    """(guess, answer) as text: the prediction's readable part, leading spaces dropped, cut to
    the length of the item's (text-form) answer."""
    answer = tokenizer.decode(item.answer)
    return text_of(tokenizer, predicted).lstrip()[: len(answer)], answer


def token_scores(
    items: Sequence[Item], predictions: Sequence[np.ndarray], native: bool, skip: int = 0
) -> list[dict[str, float]]:
    """Per-token accuracy and exact match against each answer of the form used, leaving out the
    first ``skip`` tokens of both."""
    scores = []
    for item, predicted in zip(items, predictions, strict=True):
        answer = item.form(native)[1][skip:]
        got = np.asarray(predicted)[skip:]
        scores.append({"token_acc": token_accuracy(got, answer), "exact": exact_match(got, answer)})
    return scores


def char_accuracy(predicted: str, answer: str) -> float:
    """Fraction of the answer's characters matched position by position."""
    if not answer:
        return 1.0
    return sum(a == b for a, b in zip(predicted, answer, strict=False)) / len(answer)


# -- the Task and its registry ---------------------------------------------------------------

ItemBuilder = Callable[[Any, Tokenizer, int, np.random.Generator], Item]
DocumentItem = Callable[[Any, np.ndarray, int, np.random.Generator, SpecialTokens], Item]
Scorer = Callable[[Sequence[Item], Sequence[np.ndarray], Tokenizer, bool], list[dict[str, float]]]
Chance = Callable[[Any, Sequence[Item]], float]
FormBuilder = Callable[[Any, Tokenizer, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
Documents = Callable[[int], str]


@dataclass(frozen=True)
class Task:
    """A retrieval task: what it asks, how it scores, and the layouts it can be asked in.

    - ``settings``: its ``TaskSettings`` subclass; ``sweep``: the field of it holding the sweep
      (a list of ints); ``label``: that sweep's column name in a result.
    - ``item``: ``(settings, tokenizer, point, rng) -> Item``; or, for a task cut out of
      documents, ``document_item``: ``(settings, passage, point, rng, specials) -> Item``, with
      ``passage(settings)`` the tokens of document text one item takes.
    - ``score``: ``(items, predictions, tokenizer, native) -> [{metric: value}]`` per item;
      ``metric``: the headline one; ``chance``: ``(settings, items) -> float``, the headline
      metric of a guesser that ignores the context.
    - ``native``: the objectives whose layout the items' native form is in, most native first
      (a run that trained one of them is prompted in it); ``()``: text only.
    - ``tune_native``: ``task_format`` trains (and a run tuned on the task is prompted in) the
      native form rather than the text form.
    - ``tuned_form`` (optional, for speed): ``(settings, tokenizer, point, rng) -> (input,
      target)``, exactly ``item(...).form(tune_native)`` without building the other form;
      ``task_format`` calls it, once per training example, when given.
    - ``meaning``: one line saying what the headline metric measures (printed with results).
    """

    name: str
    settings: type[TaskSettings]
    sweep: str
    label: str
    score: Scorer
    metric: str
    chance: Chance
    item: ItemBuilder | None = None
    document_item: DocumentItem | None = None
    passage: Callable[[Any], int] | None = None
    tuned_form: FormBuilder | None = None
    native: tuple[str, ...] = ()
    tune_native: bool = False
    meaning: str = ""  # one line: what the headline metric measures, and its chance level

    def __post_init__(self) -> None:
        if (self.item is None) == (self.document_item is None):
            raise ValueError(f"task '{self.name}' needs exactly one of item and document_item")
        if self.document_item is not None and self.passage is None:
            raise ValueError(f"task '{self.name}' cuts items from documents and needs passage")
        if self.tuned_form is not None and self.item is None:
            raise ValueError(f"task '{self.name}': tuned_form goes with item, not document_item")
        if not dataclasses.is_dataclass(self.settings) or not issubclass(
            self.settings, TaskSettings
        ):
            raise TypeError(f"task '{self.name}': settings must subclass TaskSettings")
        if self.sweep not in {f.name for f in dataclasses.fields(self.settings)}:
            raise ValueError(f"task '{self.name}': its settings have no sweep field {self.sweep!r}")
        if isinstance(self.native, str):
            object.__setattr__(self, "native", (self.native,))

    @property
    def needs_documents(self) -> bool:
        """Items are cut from documents (``items`` must be given them)."""
        return self.document_item is not None

    def points(self, settings: TaskSettings) -> list[int]:
        """The sweep values of ``settings``."""
        return list(getattr(settings, self.sweep))

    def parse(self, values: dict[str, Any] | Sequence[str]) -> TaskSettings:
        """Validated settings from a mapping or ``key=value`` strings."""
        return parse_settings(self.settings, values, self.name)

    def items(
        self, settings: TaskSettings, tokenizer: Tokenizer, documents: Documents | None = None
    ) -> list[Item]:
        """``samples`` items per sweep point, each a pure function of (seed, point, index) (and,
        for a task cut from documents, of document ``seed * samples + index``)."""
        points = self.points(settings)
        if self.item is not None:
            return [
                self.item(settings, tokenizer, point, rng)
                for point, _, rng in sweep_rngs(settings, points)
            ]
        if documents is None:
            raise BirdieError(f"task '{self.name}' cuts its items from documents: pass them")
        n = self.passage(settings)
        passages = [
            passage_tokens(documents, tokenizer, settings.seed * settings.samples + i, n)
            for i in range(settings.samples)
        ]
        return [
            self.document_item(settings, passages[i], point, rng, tokenizer.specials)
            for point, i, rng in sweep_rngs(settings, points)
        ]


def passage_tokens(document: Documents, tokenizer: Tokenizer, index: int, n: int) -> np.ndarray:
    """The first ``n`` tokens of document ``index`` (and the ones after it if short)."""
    parts, total = [], 0
    for k in range(index, index + MAX_DOCUMENTS_PER_PASSAGE):
        ids = tokenizer.encode(document(k))
        parts.append(ids)
        total += len(ids)
        if total >= n:
            return np.concatenate(parts)[:n].astype(np.int32)
    raise BirdieError(f"the validation documents hold fewer than {n} tokens for a task item")


TASKS: plugins.Registry[Task] = plugins.Registry("task", "birdie_ssm.tasks")


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add ``task`` to the registry under ``task.name`` (returns it). A name already taken is
    an error unless ``replace``."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task expects a Task, got {type(task).__name__}")
    return TASKS.register(task.name, task, replace=replace)


def unregister_task(name: str) -> None:
    """Remove task ``name`` (tests that register a toy task clean up with this)."""
    TASKS.pop(name, None)


def registered_tasks() -> dict[str, Task]:
    """Every registered task by name, in registration order (built-ins first)."""
    return {name: TASKS[name] for name in TASKS.names()}


def get_task(name: str) -> Task:
    """The task called ``name``; unknown names list the registered ones."""
    return TASKS.lookup(name)


def task_settings(name: str, values: dict[str, Any] | Sequence[str]) -> TaskSettings:
    """Validated settings of task ``name`` from a mapping or ``key=value`` strings."""
    return get_task(name).parse(values)
