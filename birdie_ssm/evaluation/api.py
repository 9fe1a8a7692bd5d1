"""The public evaluation API: load a run, ask it your own questions, get every answer back.

    from birdie_ssm.evaluation import load, evaluate

    run = load("runs/quickstart")                    # latest checkpoint (or step=...)
    result = evaluate(run, [{"prompt": "Ada Lovelace: ", "answer": "7012345678"}],
                      scorer="exact")                # or "contains", "prefix", "token_accuracy",
    print(result.score)                              # or a callable(prediction, answer) -> float
    for p in result.predictions:
        print(p.prompt, p.answer, p.prediction, p.score)

Prompts are laid out the way the run was trained (evaluation/prompts.py): ``format="auto"``
picks prefix (the prompt read bidirectionally) or causal; ``objective=NAME`` lays each prompt
out as that objective's input, with its paradigm token. The built-in retrieval tasks are
``evaluate_task`` / ``run_task`` (``birdie_ssm.evaluation.runner``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.prompts import PromptFormat, choose_format, objective_format, render
from birdie_ssm.evaluation.results import format_predictions, write_json
from birdie_ssm.evaluation.runner import EvalContext, complete
from birdie_ssm.tasks.base import text_of, token_accuracy

__all__ = [
    "SCORERS",
    "EvalResult",
    "Prediction",
    "evaluate",
    "load",
    "read_items",
]

DEFAULT_SAMPLE = 8  # predictions a saved result keeps unless asked for all


def load(run_dir: str | Path, step: int | None = None) -> EvalContext:
    """A trained run ready to evaluate: its model, config and tokenizer, restored from
    checkpoint ``step`` of ``run_dir`` (default: the latest). A BirdieError names what is
    missing when ``run_dir`` is not a run or holds no such checkpoint."""
    return EvalContext.load(run_dir, step)


# -- scorers: (prediction text, answer text) -> score in [0, 1] ------------------------------


def exact(prediction: str, answer: str) -> float:
    """1.0 when the prediction equals the answer (surrounding whitespace ignored)."""
    return float(prediction.strip() == answer.strip())


def prefix(prediction: str, answer: str) -> float:
    """1.0 when the prediction starts with the answer (leading whitespace ignored): what the
    built-in tasks call exact, since a model may run on after a right answer."""
    return float(prediction.lstrip().startswith(answer.strip()))


def contains(prediction: str, answer: str) -> float:
    """1.0 when the answer occurs anywhere in the prediction."""
    return float(answer.strip() in prediction)


# The fraction of the answer's tokens predicted in place: scored on token ids (see _score).
TOKEN_ACCURACY = "token_accuracy"
SCORERS: plugins.Registry[Callable[[str, str], float] | None] = plugins.Registry("scorer")
SCORERS.update({"exact": exact, "prefix": prefix, "contains": contains, TOKEN_ACCURACY: None})

Scorer = str | Callable[[str, str], float]


@dataclass
class Prediction:
    """One item: what was asked, what was expected, what the model said, and its score."""

    prompt: str
    answer: str
    prediction: str
    score: float


@dataclass
class EvalResult:
    """Per-item predictions and their mean score (``score``) under ``scorer``."""

    predictions: list[Prediction]
    scorer: str
    format: str
    step: int
    name: str = "custom"
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The mean score over every item."""
        return float(np.mean([p.score for p in self.predictions])) if self.predictions else 0.0

    def table(self) -> str:
        """One line per result: name, step, layout, scorer, score, items."""
        return (
            f"{self.name}  (step {self.step}, format {self.format})\n"
            f"{'scorer':>14}  {'score':>6}  {'n':>5}\n"
            f"{self.scorer:>14}  {self.score:6.3f}  {len(self.predictions):>5}"
        )

    def show_predictions(self, n: int) -> str:
        """The first ``n`` predictions as readable text."""
        return format_predictions([_record(p, self.scorer) for p in self.predictions[:n]])

    def to_dict(self, all_predictions: bool = False) -> dict[str, Any]:
        """JSON-able data: the aggregate and the first ``DEFAULT_SAMPLE`` predictions (all of
        them with ``all_predictions``)."""
        kept = self.predictions if all_predictions else self.predictions[:DEFAULT_SAMPLE]
        return {
            "task": self.name,
            "scorer": self.scorer,
            "format": self.format,
            "step": self.step,
            "score": self.score,
            "n": len(self.predictions),
            "notes": self.notes,
            "predictions": [asdict(p) for p in kept],
        }

    def save(self, path: str | Path, all_predictions: bool = False) -> Path:
        """Write ``to_dict(all_predictions)`` as JSON; a failed write is one BirdieError."""
        return write_json(self.to_dict(all_predictions), path)


def _record(p: Prediction, scorer: str) -> dict[str, Any]:
    return {"prompt": p.prompt, "answer": p.answer, "prediction": p.prediction,
            "scores": {scorer: p.score}}  # fmt: skip


def _as_pair(item: Any, index: int) -> tuple[str, str]:
    if isinstance(item, Mapping):
        missing = [k for k in ("prompt", "answer") if k not in item]
        if missing:
            raise BirdieError(f"item {index} has no '{missing[0]}' (items need prompt and answer)")
        prompt, answer = item["prompt"], item["answer"]
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
        prompt, answer = item
    else:
        raise BirdieError(
            f"item {index} must be a mapping with 'prompt' and 'answer' or a (prompt, answer) "
            f"pair, got {type(item).__name__}"
        )
    if not isinstance(prompt, str) or not isinstance(answer, str):
        raise BirdieError(f"item {index}: prompt and answer must be strings")
    return prompt, answer


def _layout(run: EvalContext, format: str, objective: str | None) -> PromptFormat:
    specials = run.tokenizer.specials
    if objective is not None:
        if format not in ("auto", "native"):
            raise BirdieError(f"objective= lays prompts out natively; it excludes format={format}")
        return objective_format(run.config, specials, objective)
    if format == "native":
        raise BirdieError("format='native' needs objective= (whose input layout to use)")
    return choose_format(run.config, specials, None, format)


def evaluate(
    run: EvalContext,
    items: Iterable[Mapping[str, str] | tuple[str, str]],
    scorer: Scorer = "exact",
    *,
    format: str = "auto",
    objective: str | None = None,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    name: str = "custom",
) -> EvalResult:
    """Prompt ``run``'s model with each item's prompt (greedy decoding) and score its answer.

    - ``items``: mappings with ``prompt`` and ``answer`` (text), or ``(prompt, answer)`` pairs.
    - ``scorer``: a name in ``SCORERS`` ("exact", "prefix", "contains", "token_accuracy") or a
      callable ``(prediction, answer) -> float``.
    - ``format``: "auto", "prefix" or "causal" (a layout the run trained); ``objective``: lay
      prompts out as that objective's input instead (the run must have trained it).
    - ``max_new_tokens``: generation limit per item (default: the answer's tokens + 2).
    - ``batch_size``: rows per decoding call (>= 1).
    """
    pairs = [_as_pair(item, i) for i, item in enumerate(items)]
    if not pairs:
        raise BirdieError("evaluate needs at least one item")
    if isinstance(scorer, str):
        score_fn, scorer_name = SCORERS.lookup(scorer), scorer
    elif callable(scorer):
        score_fn, scorer_name = scorer, getattr(scorer, "__name__", "custom")
    else:
        raise BirdieError(f"scorer must be a name or a callable, got {type(scorer).__name__}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise BirdieError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    fmt = _layout(run, format, objective)
    tok, specials = run.tokenizer, run.tokenizer.specials
    prompts = [render(fmt, specials, tok.encode(prompt)) for prompt, _ in pairs]
    answers = [np.asarray(tok.encode(answer), np.int32) for _, answer in pairs]
    limits = [max_new_tokens or len(a) + 2 for a in answers]
    outputs = complete(
        run.model, prompts, prefix_len=fmt.prefix_len, max_new=limits, stop=specials.eod,
        filler=specials.pad, batch_size=batch_size,
    )  # fmt: skip
    predictions = []
    for (prompt, answer), ids, answer_ids in zip(pairs, outputs, answers, strict=True):
        text = text_of(tok, ids) if len(ids) else ""
        if score_fn is None:  # token accuracy, on ids
            value = token_accuracy(ids, answer_ids)
        else:
            value = float(score_fn(text, answer))
        predictions.append(Prediction(prompt, answer, text, value))
    return EvalResult(predictions, scorer_name, fmt.kind, run.step, name)


def read_items(path: str | Path) -> list[dict[str, str]]:
    """Items from a JSONL file, one ``{"prompt": ..., "answer": ...}`` object a line (blank
    lines skipped); a BirdieError names the file and line of the first problem."""
    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise BirdieError(f"items file '{path}' {problem}")
    items = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BirdieError(f"items file '{path}' is not valid UTF-8 text ({exc.reason} at byte "
                          f"{exc.start}); save it as UTF-8") from None  # fmt: skip
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BirdieError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise BirdieError(f"{path}:{number}: expected an object with prompt and answer")
        for key in ("prompt", "answer"):
            if key not in data:
                raise BirdieError(f"{path}:{number}: missing key '{key}'")
            if not isinstance(data[key], str):
                raise BirdieError(f"{path}:{number}: '{key}' must be a string")
        items.append({"prompt": data["prompt"], "answer": data["answer"]})
    if not items:
        raise BirdieError(f"items file '{path}' holds no items")
    return items
