"""Expanding the configured mixture into arms: one arm per objective and parameter setting."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from birdie_ssm import plugins
from birdie_ssm.config import ObjectiveEntry
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives.base import Objective, build_config, get_objective
from birdie_ssm.text.tokenizer import NUM_PARADIGMS, SpecialTokens, Tokenizer


@dataclass
class Arm:
    """One objective with one parameter setting; ``objective_class`` groups arms for rewards."""

    name: str
    objective_class: str
    objective: Objective
    weight: float


def as_values(value: Any) -> list:
    """A parameter's values: a list expands into one arm per value, anything else is one value."""
    return value if isinstance(value, list) else [value]


def objective_classes(entries: list[ObjectiveEntry]) -> list[str]:
    """Objective classes in paradigm order: first appearance in the mixture."""
    return list(dict.fromkeys(entry.name for entry in entries))


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand_arms(
    entries: list[ObjectiveEntry],
    specials: SpecialTokens,
    modules: list[str] | None = None,
    tokenizer: Tokenizer | None = None,
) -> list[Arm]:
    """Arms for a mixture: list-valued parameters expand as a Cartesian product.

    An entry's weight is shared equally among its arms. Each objective class gets its own
    paradigm token, numbered in order of first appearance.
    """
    for module in modules or []:
        plugins.import_module(module, "objectives.modules")
    classes = objective_classes(entries)
    arms: list[Arm] = []
    for entry in entries:
        cls = get_objective(entry.name)
        if classes.index(entry.name) >= NUM_PARADIGMS:
            raise BirdieError(f"a mixture may hold at most {NUM_PARADIGMS} objective classes")
        grid = {k: as_values(v) for k, v in entry.params.items()}
        for key, values in grid.items():
            if not values:
                raise BirdieError(f"objective '{entry.name}': parameter '{key}' has an empty list")
        settings = [
            dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())
        ]
        varying = [k for k, v in grid.items() if len(v) > 1]
        for params in settings:
            config = build_config(cls, params)
            label = ",".join(f"{k}={_format(params[k])}" for k in varying)
            name = f"{entry.name}[{label}]" if label else entry.name
            objective = cls(config, specials, specials.paradigm(classes.index(entry.name)))
            if tokenizer is not None:
                objective.bind(tokenizer)
            arms.append(Arm(name, entry.name, objective, entry.weight / len(settings)))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BirdieError(f"the mixture lists the same arm twice: {', '.join(dupes)}")
    if sum(a.weight for a in arms) <= 0:
        raise BirdieError("the mixture's weights are all zero")
    return arms
