"""Loading objectives from the user's modules and from installed packages' entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from birdie_ssm.errors import BirdieError

ENTRY_POINT_GROUP = "birdie_ssm.objectives"
_loaded = False


def load_entry_points() -> None:
    """Import every module advertised in the ``birdie_ssm.objectives`` entry-point group, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            raise BirdieError(
                f"objective plug-in '{ep.name}' ({ep.value}) failed to load: {exc}"
            ) from None


def import_modules(modules: list[str]) -> None:
    """Import the modules listed in ``objectives.modules`` so their objectives register."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise BirdieError(f"objectives.modules: cannot import '{name}': {exc}") from None
