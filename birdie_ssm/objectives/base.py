"""The Objective protocol, the Example it produces, and the registry of objectives.

An objective is a class with a dataclass ``Config``. ``sample(tokens, rng, budget)`` turns a
document's tokens into an ``Example`` (``input_ids``: read bidirectionally; ``target_ids``: to be
generated) that uses at most ``budget`` tokens in all, and returns the unused tokens, or ``None``
when the document is too short. Objectives are pure functions of their inputs and ``rng``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError
from birdie_ssm.text.tokenizer import SpecialTokens, Tokenizer


@dataclass
class Example:
    """One training example: what the model reads, and what it must generate."""

    input_ids: np.ndarray
    target_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids) + len(self.target_ids)


class Objective:
    """Base class of objectives. Subclasses set ``Config`` and implement ``make``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = type(None)
    origin: ClassVar[str] = "builtin"

    def __init__(self, config: Any, specials: SpecialTokens, paradigm: int) -> None:
        self.config = config
        self.specials = specials
        self.paradigm = paradigm
        self.tokenizer: Tokenizer | None = None

    def bind(self, tokenizer: Tokenizer) -> None:
        """Give the objective the run's tokenizer (``expand_arms`` does, before any sampling),
        so one that works on text (words, sentences) can decode and encode under any tokenizer."""
        self.tokenizer = tokenizer

    def sample(
        self, tokens: np.ndarray, rng: np.random.Generator, budget: int
    ) -> tuple[Example, np.ndarray] | None:
        """An example of at most ``budget`` tokens (paradigm token included) and the leftovers."""
        if budget < 2:
            return None
        made = self.make(np.asarray(tokens, dtype=np.int32), rng, budget - 1)
        if made is None:
            return None
        inputs, targets, rest = made
        # Birdie names the objective with a paradigm token, after the input half of the time.
        paradigm = np.array([self.paradigm], dtype=np.int32)
        pair = (paradigm, inputs) if rng.random() < 0.5 else (inputs, paradigm)
        example = Example(np.concatenate(pair, dtype=np.int32), np.asarray(targets, np.int32))
        if len(example) > budget:
            raise BirdieError(
                f"objective '{self.name}' made an example of {len(example)} tokens for a budget "
                f"of {budget} (its make() must stay within budget - 1)"
            )
        return example, rest

    def make(
        self, tokens: np.ndarray, rng: np.random.Generator, budget: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(input, target, unused tokens) within ``budget`` tokens, or None if impossible.

        Returning None when ``tokens`` is too short makes the pipeline append the next document
        and ask again, so an objective need not accept short passages.
        """
        raise NotImplementedError

    def min_budget(self) -> int:
        """The smallest ``sample`` budget that can ever produce an example (checked per row)."""
        return 2


_REGISTRY: plugins.Registry[type[Objective]] = plugins.Registry(
    "objective", "birdie_ssm.objectives"
)


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator registering an objective under ``name`` (its class name in mixtures)."""

    def wrap(cls: type[Objective]) -> type[Objective]:
        if not dataclasses.is_dataclass(cls.Config):
            raise TypeError(f"objective '{name}' needs a dataclass Config")
        cls.name = name
        if cls.__module__.split(".")[0] != "birdie_ssm":
            cls.origin = plugins.origin(cls.__module__)  # a .py plug-in: the path given
        return _REGISTRY.register(name, cls, replace=True)

    return wrap


def registered_objectives() -> dict[str, type[Objective]]:
    """All registered objectives by name (built-ins, plug-in modules and entry points)."""
    return {name: _REGISTRY[name] for name in sorted(_REGISTRY.names())}


def get_objective(name: str) -> type[Objective]:
    """The objective class registered as ``name``; unknown names suggest the nearest one."""
    return _REGISTRY.lookup(name)


def build_config(cls: type[Objective], params: dict[str, Any]) -> Any:
    """The objective's Config from single parameter values, with errors naming the parameter."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    for key in params:
        if key not in fields:
            hint = plugins.did_you_mean(key, fields)
            accepted = ", ".join(sorted(fields)) or "none"
            raise BirdieError(
                f"objective '{cls.name}' has no parameter '{key}'{hint} (accepted: {accepted})"
            )
    try:
        return cls.Config(**params)
    except (ValueError, TypeError) as exc:
        raise BirdieError(f"objective '{cls.name}': {exc}") from None
