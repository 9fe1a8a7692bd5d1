"""The Controller protocol and the registry behind ``make_controller``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

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


_CONTROLLERS: dict[str, Callable[..., Controller]] = {}


def register_controller(name: str) -> Callable[[type], type]:
    """Class decorator that makes a controller available to ``make_controller(name, ...)``."""

    def wrap(cls: type) -> type:
        _CONTROLLERS[name] = cls
        return cls

    return wrap


def controller_names() -> list[str]:
    """Names of all registered controllers."""
    return sorted(_CONTROLLERS)


def make_controller(
    name: str, arms: Sequence[str], classes: Sequence[str], **params: Any
) -> Controller:
    """Build the controller ``name`` for the given arms (and each arm's objective class)."""
    if name not in _CONTROLLERS:
        raise BirdieError(
            f"unknown controller '{name}'; registered: {', '.join(controller_names())}"
        )
    if len(arms) != len(classes) or not arms:
        raise BirdieError("a controller needs at least one arm and one class name per arm")
    try:
        return _CONTROLLERS[name](list(arms), list(classes), **params)
    except TypeError as exc:
        raise BirdieError(f"bad parameters for controller '{name}': {exc}") from None


def normalise(probs: np.ndarray) -> np.ndarray:
    """A valid probability vector (non-negative, sums to one) from non-negative weights."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    total = probs.sum()
    if not np.isfinite(total) or total <= 0:
        raise BirdieError("a mixture needs at least one positive, finite weight")
    return probs / total
