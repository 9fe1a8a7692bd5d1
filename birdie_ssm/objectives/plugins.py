"""Objectives from the user's modules (``objectives.modules``) and from installed packages'
entry points (group ``birdie_ssm.objectives``), through the shared loader."""

from __future__ import annotations

from birdie_ssm import plugins

ENTRY_POINT_GROUP = "birdie_ssm.objectives"


def load_entry_points() -> None:
    """Import every module advertised in the ``birdie_ssm.objectives`` entry-point group, once."""
    plugins.load_entry_points(ENTRY_POINT_GROUP, "objective")


def import_modules(modules: list[str]) -> None:
    """Import the modules listed in ``objectives.modules`` so their objectives register."""
    for name in modules:
        plugins.import_module(name, "objectives.modules")
