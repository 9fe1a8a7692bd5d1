"""The Controller protocol and the registry behind ``make_controller``.

A controller class is built as ``cls.create(arms, classes, mixture, **params)`` (``ControllerBase``
has it: the learning controllers start uniform, ``fixed`` keeps the configured ``mixture``). It
registers with ``@register_controller("name")`` when its module is imported: a built-in module
listed in ``curriculum/__init__.py``, a module named in ``controller.modules`` (imported by
``train.build``), or one advertised in the ``birdie_ssm.controllers`` entry-point group of an
installed package (loaded on the first lookup).
"""

from __future__ import annotations

import dataclasses
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

    @classmethod
    def create(
        cls, arms: list[str], classes: list[str], mixture: list[float] | None, **params: Any
    ) -> Controller:
        """Build for a run whose configured mixture is ``mixture`` (one weight per arm), with the
        config's ``controller.params`` (and ``reward``) as keywords."""
        ...

    def initial_mixture(self) -> np.ndarray: ...

    def update(
        self, step: int, val_losses: np.ndarray, played: np.ndarray | None = None
    ) -> np.ndarray:
        """The next mixture; ``played`` is the mixture realised since the last update, if known."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


ENTRY_POINT_GROUP = "birdie_ssm.controllers"
_CONTROLLERS: plugins.Registry[type[Controller]] = plugins.Registry("controller", ENTRY_POINT_GROUP)


def register_controller(name: str) -> Callable[[type], type]:
    """Class decorator that makes a controller available to ``make_controller(name, ...)``."""
    return _CONTROLLERS.add(name)


def controller_names() -> list[str]:
    """Names of all registered controllers (built-in and plug-in)."""
    return sorted(_CONTROLLERS.names())


def make_controller(
    name: str,
    arms: Sequence[str],
    classes: Sequence[str],
    *,
    mixture: Sequence[float] | None = None,
    **params: Any,
) -> Controller:
    """Build the controller ``name`` for the given arms (and each arm's objective class).

    ``mixture`` is the mixture the run configured (one weight per arm); the class's ``create``
    decides what it means to it.
    """
    cls = _CONTROLLERS.lookup(name)
    if len(arms) != len(classes) or not arms:
        raise BirdieError("a controller needs at least one arm and one class name per arm")
    accepted = _parameters(cls)
    unknown = [key for key in params if accepted is not None and key not in accepted]
    if unknown:
        hint = plugins.did_you_mean(unknown[0], accepted or ())
        raise BirdieError(
            f"controller '{name}' has no parameter '{unknown[0]}'{hint} (its parameters, set "
            f"in controller.params: {', '.join(sorted(accepted - {'reward'})) or 'none'})"
        )
    weights = None if mixture is None else [float(w) for w in mixture]
    try:
        return cls.create(list(arms), list(classes), weights, **params)
    except (TypeError, ValueError) as exc:
        raise BirdieError(f"bad parameters for controller '{name}': {exc}") from None


def takes_parameter(name: str, parameter: str) -> bool:
    """Whether controller ``name`` takes ``parameter`` in ``controller.params``."""
    accepted = _parameters(_CONTROLLERS.lookup(name))
    return accepted is None or parameter in accepted


def _parameters(cls: Callable[..., Controller]) -> set[str] | None:
    """The keyword parameters ``make_controller`` can pass to ``cls.create`` (and through its
    ``**params`` to the constructor): the fields of its ``Config`` dataclass when it has one; None
    when it takes any (``**kwargs`` all the way down)."""
    config = getattr(cls, "Config", None)
    if dataclasses.is_dataclass(config):
        return {f.name for f in dataclasses.fields(config)} | {"reward"}
    names: set[str] = set()
    for function in (cls.create, cls):
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names - {"arms", "classes", "mixture"}
    return None


def normalise(probs: np.ndarray) -> np.ndarray:
    """A valid probability vector (non-negative, sums to one) from non-negative weights."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    total = probs.sum()
    if not np.isfinite(total) or total <= 0:
        raise BirdieError("a mixture needs at least one positive, finite weight")
    return probs / total
