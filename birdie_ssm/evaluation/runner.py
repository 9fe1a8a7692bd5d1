"""Shared machinery of the retrieval tasks: items, settings, batched greedy decoding, scoring.

Decoding goes through ``models.decode.generate`` (batched prefill, then one compiled loop: no
host round trip per token). Every distinct prompt shape costs a compilation, which dominates
evaluation time on CPU, so prompts are left-padded to power-of-two lengths and batches are
filled to a fixed size with filler rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import yaml
from flax import nnx

from birdie_ssm.config import Config
from birdie_ssm.data.tokenizer import Tokenizer
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.prompts import FORMATS, PromptFormat, choose_format, render
from birdie_ssm.evaluation.results import TaskResult

MIN_PROMPT_BUCKET = 64
MIN_DECODE_BUCKET = 16


@dataclass(frozen=True)
class Item:
    """One question: the text-form context and answer, and optionally an objective-native form."""

    context: np.ndarray
    answer: np.ndarray
    point: int  # the sweep value this item belongs to (book size, length, ...)
    native_input: np.ndarray | None = None
    native_answer: np.ndarray | None = None

    def form(self, native: bool) -> tuple[np.ndarray, np.ndarray]:
        """(what the model reads, what it should generate) in the text or the native form.

        An item without an objective-native form is natively its text form: a ``task_format``
        run trains on exactly that (see objectives/task_format.py)."""
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


def parse_settings(cls: type[TaskSettings], values: dict[str, Any] | Sequence[str]) -> TaskSettings:
    """Task settings from a mapping or ``key=value`` strings (values read as YAML)."""
    if not isinstance(values, dict):
        pairs = {}
        for text in values:
            key, sep, raw = text.partition("=")
            if not sep or not key.strip():
                raise BirdieError(f"--set expects key=value (e.g. samples=16), got {text!r}")
            try:
                pairs[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                pairs[key.strip()] = raw  # not YAML: the type check below names the key
        values = pairs
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise BirdieError(
            f"unknown setting '{unknown[0]}' for this task (accepted: {', '.join(names)})"
        )
    try:
        return pydantic.TypeAdapter(cls).validate_python(dict(values))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "settings"
        raise BirdieError(f"invalid task setting '{key}': {first['msg']}") from None
    except ValueError as exc:
        raise BirdieError(f"invalid task settings: {exc}") from None


def settings_dict(settings: TaskSettings) -> dict[str, Any]:
    """Settings as plain JSON-able data (what a result file records)."""
    return dataclasses.asdict(settings)


@dataclass
class EvalContext:
    """A trained model and what evaluation needs to talk to it."""

    model: nnx.Module
    config: Config
    tokenizer: Tokenizer
    run_dir: Path
    step: int

    @classmethod
    def load(cls, run_dir: str | Path) -> EvalContext:
        """Restore the latest checkpoint of ``run_dir``."""
        from birdie_ssm.train.loading import load_run

        if not Path(run_dir).is_dir():
            problem = "is not a directory" if Path(run_dir).exists() else "does not exist"
            raise BirdieError(f"checkpoint directory '{run_dir}' {problem}")
        run = load_run(run_dir)
        return cls(run.model, run.config, run.tokenizer, Path(run_dir), run.step)


def bucket(n: int, minimum: int) -> int:
    """The power of two >= max(n, minimum): few distinct shapes, so few compilations."""
    return 1 << (max(int(n), minimum, 1) - 1).bit_length()


def complete(
    model: nnx.Module,
    prompts: Sequence[np.ndarray],
    *,
    prefix_len: int | None,
    max_new: int | Sequence[int],
    stop: int,
    filler: int,
    batch_size: int,
) -> list[np.ndarray]:
    """Greedy continuations of ``prompts``, each cut before the first ``stop`` token and after
    ``max_new`` tokens (one limit for all, or one per prompt)."""
    from birdie_ssm.models.decode import generate

    limits = [int(max_new)] * len(prompts) if np.ndim(max_new) == 0 else list(max_new)
    if len(limits) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(limits)} max_new limits")
    length = bucket(max(len(p) for p in prompts), MIN_PROMPT_BUCKET)
    # One decode length for the whole call (one compiled shape); each row is cut to its own.
    steps = bucket(max(limits), MIN_DECODE_BUCKET)
    # One filler row of the bucket length fixes the padded width; the rest fix the batch size.
    pad_row = np.full(length, filler, np.int32)
    chunk = batch_size - 1
    outputs: list[np.ndarray] = []
    for start in range(0, len(prompts), chunk):
        rows = list(prompts[start : start + chunk])
        real = len(rows)
        rows += [pad_row] * (batch_size - real)
        out = generate(model, rows, steps, prefix_len=prefix_len, stop_token=stop)
        for row, limit in zip(out[:real], limits[start : start + real], strict=True):
            row = row[:limit]
            hit = np.flatnonzero(row == stop)
            outputs.append(row[: hit[0]] if len(hit) else row)
    return outputs


def predict(
    ctx: EvalContext, items: Sequence[Item], fmt: PromptFormat, batch_size: int
) -> list[np.ndarray]:
    """The model's greedy answer to every item, prompted in ``fmt``."""
    specials = ctx.tokenizer.specials
    native = fmt.kind == "native"
    forms = [item.form(native) for item in items]
    prompts = [render(fmt, specials, reads) for reads, _ in forms]
    # Each item may generate its own answer's length and 2 more (room to show it stops): never
    # the longest answer of the sweep, which would let a short item run on into extra guesses.
    max_new = [len(answer) + 2 for _, answer in forms]
    return complete(
        ctx.model,
        prompts,
        prefix_len=fmt.prefix_len,
        max_new=max_new,
        stop=specials.eod,
        filler=specials.pad,
        batch_size=batch_size,
    )


# -- scoring ---------------------------------------------------------------------------------


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


def aggregate(
    items: Sequence[Item], scores: Sequence[dict[str, float]], sweep: str
) -> list[dict[str, Any]]:
    """Mean of each score per sweep point: ``[{sweep: value, metric: mean, ..., "n": count}]``."""
    groups: dict[int, list[dict[str, float]]] = defaultdict(list)
    for item, score in zip(items, scores, strict=True):
        groups[item.point].append(score)
    points = []
    for value in sorted(groups):
        rows = groups[value]
        point: dict[str, Any] = {sweep: value}
        point.update({k: float(np.mean([r[k] for r in rows])) for k in rows[0]})
        point["n"] = len(rows)
        points.append(point)
    return points


Scorer = Callable[[Sequence[Item], Sequence[np.ndarray], Tokenizer, bool], list[dict[str, float]]]


def evaluate_items(
    ctx: EvalContext,
    task: str,
    settings: TaskSettings,
    items: Sequence[Item],
    scorer: Scorer,
    *,
    sweep: str,
    metric: str,
    chance: float,
    native: str | None = None,
    notes: Sequence[str] = (),
) -> TaskResult:
    """Prompt the model with every item, score the answers and summarise them per sweep point."""
    start = time.perf_counter()
    fmt = choose_format(ctx.config, ctx.tokenizer.specials, native, settings.format, task=task)
    predictions = predict(ctx, items, fmt, settings.batch_size)
    scores = scorer(items, predictions, ctx.tokenizer, fmt.kind == "native")
    return TaskResult(
        task=task,
        sweep=sweep,
        metric=metric,
        format=fmt.kind,
        points=aggregate(items, scores, sweep),
        settings=settings_dict(settings),
        step=ctx.step,
        seconds=round(time.perf_counter() - start, 2),
        chance=chance,
        notes=list(notes),
    )
