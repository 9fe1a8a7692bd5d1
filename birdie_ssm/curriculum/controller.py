"""The Controller protocol and the registry behind ``make_controller``.

A controller registers with ``@register_controller("name")`` when its module is imported: a
built-in module listed in ``curriculum/__init__.py``, a module named in ``controller.modules``
(imported by ``train.build``), or one advertised in the ``birdie_ssm.controllers`` entry-point
group of an installed package (loaded on the first lookup).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from birdie_ssm import plugins
from birdie_ssm.errors import BirdieError


@runtime_checkable
class Controller(Protocol):
    """Turns per-arm validation losses into the next mixture over arms."""

    arms: list[str]
    classes: list[str]
    info: dict[str, Any]  # what the last update saw and decided, logged to metrics.jsonl

    def initial_mixture(self) -> np.ndarray: ...

    def update(
        self, step: int, val_losses: np.ndarray, played: np.ndarray | None = None
    ) -> np.ndarray:
        """The next mixture; ``played`` is the mixture realised since the last update, if known."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


ENTRY_POINT_GROUP = "birdie_ssm.controllers"
_CONTROLLERS: dict[str, Callable[..., Controller]] = {}


def load_entry_points() -> None:
    """Import every module advertised in the ``birdie_ssm.controllers`` group, once."""
    plugins.load_entry_points(ENTRY_POINT_GROUP, "controller")


def register_controller(name: str) -> Callable[[type], type]:
    """Class decorator that makes a controller available to ``make_controller(name, ...)``."""

    def wrap(cls: type) -> type:
        _CONTROLLERS[name] = cls
        return cls

    return wrap


def controller_names() -> list[str]:
    """Names of all registered controllers (built-in and plug-in)."""
    load_entry_points()
    return sorted(_CONTROLLERS)


def make_controller(
    name: str,
    arms: Sequence[str],
    classes: Sequence[str],
    *,
    mixture: Sequence[float] | None = None,
    **params: Any,
) -> Controller:
    """Build the controller ``name`` for the given arms (and each arm's objective class).

    ``mixture`` is the mixture the run configured (one weight per arm). A controller class with
    a ``create(arms, classes, mixture, **params)`` classmethod (``ControllerBase`` has one) is
    built through it and decides what the configured mixture means to it (``fixed`` keeps it;
    the learning controllers start uniform); any other class is called as
    ``cls(arms, classes, **params)``.
    """
    if name not in _CONTROLLERS:
        load_entry_points()
    if name not in _CONTROLLERS:
        raise BirdieError(
            f"unknown controller '{name}'; registered: {', '.join(controller_names())}"
        )
    if len(arms) != len(classes) or not arms:
        raise BirdieError("a controller needs at least one arm and one class name per arm")
    cls = _CONTROLLERS[name]
    accepted = _parameters(cls)
    unknown = [key for key in params if accepted is not None and key not in accepted]
    if unknown:
        near = difflib.get_close_matches(unknown[0], sorted(accepted or ()), n=1, cutoff=0.5)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise BirdieError(
            f"controller '{name}' has no parameter '{unknown[0]}'{hint} (its parameters, set "
            f"in controller.params: {', '.join(sorted(accepted - {'reward'})) or 'none'})"
        )
    create = getattr(cls, "create", None)
    weights = None if mixture is None else [float(w) for w in mixture]
    try:
        if create is not None:
            return create(list(arms), list(classes), weights, **params)
        return cls(list(arms), list(classes), **params)
    except TypeError as exc:
        raise BirdieError(f"bad parameters for controller '{name}': {exc}") from None


def takes_parameter(name: str, parameter: str) -> bool:
    """Whether controller ``name`` takes ``parameter`` in ``controller.params``."""
    if name not in _CONTROLLERS:
        load_entry_points()
    accepted = _parameters(_CONTROLLERS[name]) if name in _CONTROLLERS else set()
    return accepted is None or parameter in accepted


def _parameters(cls: Callable[..., Controller]) -> set[str] | None:
    """The keyword parameters ``make_controller`` can pass to ``cls`` (through ``create`` when it
    has one): the fields of its ``Config`` dataclass when it has one; None when it takes any
    (``**kwargs`` all the way down)."""
    config = getattr(cls, "Config", None)
    if dataclasses.is_dataclass(config):
        return {f.name for f in dataclasses.fields(config)} | {"reward"}
    names: set[str] = set()
    for function in (getattr(cls, "create", None), cls):
        if function is None:
            continue
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names - {"arms", "classes", "mixture"}
    return None


def update_controller(
    controller: Controller, step: int, losses: np.ndarray, played: np.ndarray | None
) -> np.ndarray:
    """``controller.update``, passing ``played`` when the controller accepts it (a plug-in
    written before ``played`` existed is called without it)."""
    try:
        parameters = inspect.signature(controller.update).parameters.values()
    except (TypeError, ValueError):
        parameters = []
    if any(p.name == "played" or p.kind is p.VAR_KEYWORD for p in parameters):
        return controller.update(step, losses, played=played)
    return controller.update(step, losses)


def normalise(probs: np.ndarray) -> np.ndarray:
    """A valid probability vector (non-negative, sums to one) from non-negative weights."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    total = probs.sum()
    if not np.isfinite(total) or total <= 0:
        raise BirdieError("a mixture needs at least one positive, finite weight")
    return probs / total
