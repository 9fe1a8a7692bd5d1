"""A task defined outside the package: one file and one ``register_task`` call.

``toy-recall``: a few pairs of one-letter keys and one-digit values; the answer is the value of
the key asked. Text form ``a=1 b=2\nb=``; native form in associative recall's layout (the
objective's own layout function, so a run trained on ``associative_recall`` is asked natively).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from birdie_ssm.tasks import Item, Task, TaskSettings, check_sweep, register_task
from birdie_ssm.tasks.base import exact_match
from birdie_ssm.tasks.mqar import recall_layout

NAME = "toy-recall"


@dataclass
class ToySettings(TaskSettings):
    pairs: list[int] = field(default_factory=lambda: [2, 4])

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sweep("pairs", self.pairs, 1, 10)


def toy_item(settings, tokenizer, pairs, rng) -> Item:
    keys = rng.choice(list(string.ascii_lowercase), size=pairs, replace=False)
    values = rng.choice(list(string.digits), size=pairs)
    asked = int(rng.integers(pairs))
    text = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
    table = np.stack([tokenizer.encode(k + v) for k, v in zip(keys, values, strict=True)])
    native_input, native_answer = recall_layout(table, np.array([asked]), 1, tokenizer.specials)
    return Item(
        tokenizer.encode(f"{text}\n{keys[asked]}="),
        tokenizer.encode(values[asked]),
        pairs,
        native_input=native_input,
        native_answer=native_answer,
    )


def score_toy(items, predictions, tokenizer, native):
    return [
        {"exact": exact_match(np.asarray(p), item.form(native)[1][:1])}
        for item, p in zip(items, predictions, strict=True)
    ]


TOY = Task(
    name=NAME,
    settings=ToySettings,
    sweep="pairs",
    label="pairs",
    item=toy_item,
    score=score_toy,
    metric="exact",
    chance=lambda settings, items: 0.1,
    native=("associative_recall",),
)
register_task(TOY, replace=True)


def registered_toy_task():
    """This module, with its task registered (again, if a test unregistered it)."""
    import importlib
    import sys

    from birdie_ssm.tasks import TASKS

    module = sys.modules[__name__]
    return module if NAME in TASKS else importlib.reload(module)
