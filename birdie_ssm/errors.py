"""The one exception type for mistakes a user can make (config, data, objectives, checkpoints),
and the checks shared by every layer that raise it."""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any


class BirdieError(Exception):
    """A user-facing error: the CLI prints its message without a traceback and exits non-zero."""


def check_range(
    name: str, value: Any, low: float, high: float, *, integer: bool = False, open_low: bool = False
) -> Any:
    """``value``, or a ValueError naming parameter ``name`` unless it is a number (an integer if
    ``integer``) in [low, high] (in (low, high] if ``open_low``): the range check of every
    component's parameters."""
    kind = numbers.Integral if integer else numbers.Real
    number = isinstance(value, kind) and not isinstance(value, bool)
    if not number or not ((low < value if open_low else low <= value) and value <= high):
        what = "an integer" if integer else "a number"
        bounds = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise ValueError(f"parameter '{name}' must be {what} in {bounds}, got {value!r}")
    return value


def check_writable(path: str | Path, what: str) -> None:
    """Raise a BirdieError unless ``path`` (or, if absent, its nearest existing parent) can be
    written: checked before any work, so nothing is lost at the end."""
    probe = Path(path).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise BirdieError(f"{what} '{path}' is not writable ('{probe}' does not let this user "
                          "write); choose another directory or fix its permissions")  # fmt: skip


def not_a_file(path: str | Path) -> str:
    """Why ``path`` cannot be read as a file, for a message: 'does not exist', or what it is."""
    path = Path(path)
    if path.is_dir():
        return "is a directory, not a file"
    return "is not a regular file" if path.exists() else "does not exist"
