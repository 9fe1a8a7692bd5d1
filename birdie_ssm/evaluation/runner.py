"""The evaluation harness: a run's model, batched greedy decoding, and one generic
``evaluate_task`` driven by the task registry (``birdie_ssm.tasks``).

Decoding goes through ``models.decode.generate`` (batched prefill, then one compiled loop: no
host round trip per token). Every distinct prompt shape costs a compilation, which dominates
evaluation time on CPU, so prompts are left-padded to power-of-two lengths and batches are
filled to a fixed size with filler rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from birdie_ssm.config import Config
from birdie_ssm.errors import BirdieError, check_writable
from birdie_ssm.evaluation.prompts import TASK_FORMAT, PromptFormat, choose_format, render
from birdie_ssm.evaluation.results import TaskResult, result_key, result_path, save_result
from birdie_ssm.objectives.arms import as_values
from birdie_ssm.objectives.copying import CopyingConfig
from birdie_ssm.objectives.spans import parse_band
from birdie_ssm.pipeline.packing import OVERHEAD
from birdie_ssm.tasks import Item, Task, TaskSettings, get_task, settings_dict, task_settings
from birdie_ssm.tasks.base import text_of
from birdie_ssm.tasks.phonebook import multi_phonebook_room
from birdie_ssm.text.corpus import held_out_passages, make_source
from birdie_ssm.text.tokenizer import Tokenizer

__all__ = [
    "EvalContext",
    "aggregate",
    "bucket",
    "complete",
    "evaluate_task",
    "predict",
    "prediction_records",
    "show_ids",
    "result_file",
    "run_task",
    "task_items",
    "task_settings",
]

MIN_PROMPT_BUCKET = 64
MIN_DECODE_BUCKET = 16
PREDICTIONS_PER_POINT = 8  # predictions a result keeps per sweep point unless asked for all


@dataclass
class EvalContext:
    """A trained model and what evaluation needs to talk to it."""

    model: nnx.Module
    config: Config
    tokenizer: Tokenizer
    run_dir: Path
    step: int

    @classmethod
    def load(cls, run_dir: str | Path, step: int | None = None) -> EvalContext:
        """Restore checkpoint ``step`` of ``run_dir`` (default: the latest)."""
        from birdie_ssm.train.loading import load_run

        check_run_dir(run_dir)
        run = load_run(run_dir, step)
        return cls(run.model, run.config, run.tokenizer, Path(run_dir), run.step)


def check_run_dir(run_dir: str | Path) -> None:
    """Raise a BirdieError unless ``run_dir`` is an existing directory."""
    if not Path(run_dir).is_dir():
        problem = "is not a directory" if Path(run_dir).exists() else "does not exist"
        raise BirdieError(f"checkpoint directory '{run_dir}' {problem}")


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
    ``max_new`` tokens (one limit for all, or one per prompt).

    ``batch_size`` rows go to each decoding call, one of them a ``filler`` row of the bucket
    length that fixes the padded width; a call always carries at least one prompt, so
    ``batch_size=1`` decodes one prompt (plus the filler) at a time."""
    from birdie_ssm.models.decode import generate

    limits = [int(max_new)] * len(prompts) if np.ndim(max_new) == 0 else list(max_new)
    if len(limits) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(limits)} max_new limits")
    if batch_size < 1:
        raise BirdieError(f"batch_size must be >= 1, got {batch_size}")
    if not prompts:
        return []
    length = bucket(max(len(p) for p in prompts), MIN_PROMPT_BUCKET)
    # One decode length for the whole call (one compiled shape); each row is cut to its own.
    steps = bucket(max(limits), MIN_DECODE_BUCKET)
    # One filler row of the bucket length fixes the padded width; the rest fix the batch size.
    pad_row = np.full(length, filler, np.int32)
    chunk = max(batch_size - 1, 1)
    outputs: list[np.ndarray] = []
    for start in range(0, len(prompts), chunk):
        rows = list(prompts[start : start + chunk])
        real = len(rows)
        rows += [pad_row] * max(batch_size - real, 1)
        out = generate(model, rows, steps, prefix_len=prefix_len, stop_token=stop)
        for row, limit in zip(out[:real], limits[start : start + real], strict=True):
            row = row[:limit]
            hit = np.flatnonzero(row == stop)
            outputs.append(row[: hit[0]] if len(hit) else row)
    return outputs


def predict(
    ctx: EvalContext,
    items: Sequence[Item],
    fmt: PromptFormat,
    batch_size: int,
    native: bool | None = None,
    room: AnswerRoom | None = None,
) -> list[np.ndarray]:
    """The model's greedy answer to every item, prompted in ``fmt``, in the items' native form
    when ``native`` (default: when ``fmt`` is native). ``room``: the tokens an item's text-form
    answer may take (default: its answer's length and 2)."""
    specials = ctx.tokenizer.specials
    native = fmt.kind == "native" if native is None else native
    forms = [item.form(native) for item in items]
    prompts = [render(fmt, specials, reads) for reads, _ in forms]
    # Each item may generate its own answer's length and 2 more (room to show it stops): never
    # the longest answer of the sweep, which would let a short item run on into extra guesses.
    # A task whose scorer accepts longer forms of the answer says how long (ANSWER_ROOM).
    max_new = [len(answer) + 2 for _, answer in forms]
    if room is not None and not native:
        max_new = [room(item, ctx.tokenizer) for item in items]
    return complete(
        ctx.model,
        prompts,
        prefix_len=fmt.prefix_len,
        max_new=max_new,
        stop=specials.eod,
        filler=specials.pad,
        batch_size=batch_size,
    )


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


def needs_native_form(task: Task, fmt: PromptFormat) -> bool:
    """Whether ``task``'s items are asked in their native form under ``fmt``: in an objective's
    layout, or through ``task_format`` when that objective trains the native form."""
    if fmt.kind != "native":
        return False
    return task.tune_native if fmt.objective == TASK_FORMAT else True


def show_ids(tokenizer: Tokenizer, ids: np.ndarray) -> str:
    """Token ids as readable text, special tokens shown by name (``<sep>``, ``<P1>``, ``<S3>``)."""
    specials = tokenizer.specials
    named = {specials.pad: "<pad>", specials.eod: "<eod>", specials.sep: "<sep>",
             specials.done: "<done>"}  # fmt: skip
    ids = np.asarray(ids, np.int64)
    special = specials.is_special(ids)
    parts, start = [], 0
    for i in [*np.flatnonzero(special), len(ids)]:
        if i > start:
            parts.append(tokenizer.decode(ids[start:i]))
        if i < len(ids):
            t = int(ids[i])
            if t in named:
                parts.append(named[t])
            elif t >= specials.sentinel_base:
                parts.append(f"<S{t - specials.sentinel_base}>")
            elif t >= specials.paradigm_base:
                parts.append(f"<P{t - specials.paradigm_base}>")
            else:
                parts.append(f"<{t}>")
        start = i + 1
    return "".join(parts)


def prediction_records(
    tokenizer: Tokenizer,
    items: Sequence[Item],
    predictions: Sequence[np.ndarray],
    scores: Sequence[dict[str, float]],
    native: bool,
    per_point: int | None = PREDICTIONS_PER_POINT,
) -> list[dict[str, Any]]:
    """What a result stores per item: point, prompt (what the model read), answer, prediction
    (text; a native form shows its special tokens by name) and scores; the first ``per_point``
    items of each sweep point (None: all)."""
    kept: dict[int, int] = defaultdict(int)
    records = []
    for item, predicted, score in zip(items, predictions, scores, strict=True):
        if per_point is not None and kept[item.point] >= per_point:
            continue
        kept[item.point] += 1
        reads, answer = item.form(native)
        show = show_ids if native and item.has_native else _text
        records.append(
            {
                "point": item.point,
                "prompt": show(tokenizer, reads),
                "answer": show(tokenizer, answer),
                "prediction": show(tokenizer, predicted),
                "scores": {k: float(v) for k, v in score.items()},
            }
        )
    return records


def _text(tokenizer: Tokenizer, ids: np.ndarray) -> str:
    return text_of(tokenizer, ids) if len(ids) else ""


def task_items(
    ctx: EvalContext, task: Task, settings: TaskSettings
) -> tuple[list[Item], list[str]]:
    """The items ``task`` asks ``ctx``'s run, and notes for its result. A task cut from
    documents reads distinct passages of the run's held-out text: never one passage twice in
    a result, and other seeds other passages while the held-out text lasts (the sample count
    is capped to the passages there are, and the result says so)."""
    if not task.needs_documents:
        return task.items(settings, ctx.tokenizer), []
    n = task.passage(settings)
    documents, available = held_out_passages(make_source(ctx.config.data), ctx.tokenizer, n)
    notes = []
    if available is not None:
        if available == 0:
            raise BirdieError(
                f"task '{task.name}': the held-out documents hold no stretch of {n} tokens; "
                "ask for a shorter passage"
            )
        if settings.samples > available:
            notes.append(
                f"samples: {available} of the {settings.samples} asked, the distinct "
                f"{n}-token passages the held-out documents hold (every seed asks these)"
            )
            settings = dataclasses.replace(settings, samples=available)
        elif (settings.seed + 1) * settings.samples > available:
            notes.append(
                f"seed {settings.seed} reuses passages of lower seeds: the held-out documents "
                f"hold {available} distinct {n}-token passages ({settings.samples} per seed)"
            )
    return task.items(settings, ctx.tokenizer, documents), notes


def evaluate_task(
    ctx: EvalContext, name: str, settings: TaskSettings, *, all_predictions: bool = False
) -> TaskResult:
    """Prompt the model with every item of task ``name``, score the answers and summarise them
    per sweep point (in the most native layout the run trained, see evaluation/prompts.py).

    The result keeps the first ``PREDICTIONS_PER_POINT`` predictions of each sweep point, or
    every one with ``all_predictions``."""
    task = get_task(name)
    if not isinstance(settings, task.settings):
        raise BirdieError(
            f"task '{name}' takes {task.settings.__name__}, got {type(settings).__name__}"
        )
    start = time.perf_counter()
    items, notes = task_items(ctx, task, settings)
    fmt = choose_format(ctx.config, ctx.tokenizer.specials, task.native, settings.format, task=name)
    native = needs_native_form(task, fmt)
    if native and fmt.objective != TASK_FORMAT and not all(item.has_native for item in items):
        raise BirdieError(
            f"task '{name}' has items without a native form at these settings (too short for "
            f"the {fmt.objective} layout, or spelled in varying token lengths by this "
            "tokenizer); ask for format=prefix or causal"
        )
    room = ANSWER_ROOM.get(name)
    predictions = predict(ctx, items, fmt, settings.batch_size, native=native, room=room)
    scores = task.score(items, predictions, ctx.tokenizer, native)
    result = TaskResult(
        task=name,
        sweep=task.label,
        metric=task.metric,
        format=fmt.kind,
        points=aggregate(items, scores, task.label),
        settings=settings_dict(settings),
        step=ctx.step,
        seconds=0.0,
        chance=float(task.chance(settings, items)),
        notes=notes,
        predictions=prediction_records(
            ctx.tokenizer,
            items,
            predictions,
            scores,
            native,
            None if all_predictions else PREDICTIONS_PER_POINT,
        ),  # fmt: skip
    )
    for annotate in ANNOTATIONS.get(name, ()):
        annotate(ctx, result)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def run_task(
    ctx: EvalContext, name: str, settings: TaskSettings, *, all_predictions: bool = False
) -> TaskResult:
    """Evaluate ``ctx``'s model on task ``name`` and write the result to ``result_file`` (its
    folder checked for writability before the work)."""
    path = result_file(ctx, name, settings)
    check_writable(path.parent, "evaluation folder")
    result = evaluate_task(ctx, name, settings, all_predictions=all_predictions)
    save_result(result, path)
    return result


# -- where a result is kept: apart from results under other settings or checkpoints ---------


def own_settings(config: Config, name: str) -> dict[str, Any] | None:
    """The settings a run asks task ``name`` by itself (``birdie-ssm eval --checkpoint DIR``):
    its ``eval.tasks`` entry, else the task's defaults; None if those no longer parse."""
    try:
        return settings_dict(task_settings(name, dict(config.eval.tasks.get(name) or {})))
    except BirdieError:
        return None


def task_result_key(own: dict[str, Any] | None, settings: dict[str, Any], step: int) -> str:
    """What sets a task's result apart: ``step=N``, then each setting that differs from the
    run's own ``own`` (``step=4,samples=8,book_sizes=[4,8]``)."""
    parts: dict[str, Any] = {"step": step}
    for key in sorted(settings):
        if own is None or key not in own or settings[key] != own[key]:
            parts[key] = settings[key]
    return result_key(parts)


def result_file(ctx: EvalContext, name: str, settings: TaskSettings) -> Path:
    """Where the result of task ``name`` under ``settings`` at ``ctx``'s checkpoint is kept:
    ``eval/<name>@<key>.json`` (``task_result_key``), so that no result overwrites another."""
    key = task_result_key(own_settings(ctx.config, name), settings_dict(settings), ctx.step)
    return result_path(ctx.run_dir, name, key)


# -- what a result says about the run that trained it (needs the run's objectives) ---------


def longest_trained_copy(config: Config) -> int:
    """The longest string a training row of the run could have copied."""
    longest = (config.data.seq_len - OVERHEAD - 1) // 2  # input + paradigm + target
    bands = [
        parse_band("length", value, 1, 1 << 20)
        for entry in config.objectives.mixture
        if entry.name == "copying"
        for value in as_values(entry.params.get("length", CopyingConfig().length))
    ]
    if bands and all(band is not None for band in bands):
        return min(longest, max(band[1] for band in bands))
    return longest


def annotate_beyond_train(ctx: EvalContext, result: TaskResult) -> None:
    """Flag the copying lengths longer than the run ever trained on (``beyond_train``)."""
    longest = longest_trained_copy(ctx.config)
    result.notes.append(f"beyond_train: longer than the {longest} tokens a training row could copy")
    for point in result.points:
        point["beyond_train"] = point[result.sweep] > longest


# Per task whose scorer accepts answers longer than the item's own (multi-phonebook takes
# ``Name: number``): the tokens an item's answer may take.
AnswerRoom = Callable[[Item, Tokenizer], int]
ANSWER_ROOM: dict[str, AnswerRoom] = {"multi-phonebook": multi_phonebook_room}

# Per task: functions that add to its result what only the run's training config can tell.
ANNOTATIONS: dict[str, list[Callable[[EvalContext, TaskResult], None]]] = {
    "copying": [annotate_beyond_train],
}
