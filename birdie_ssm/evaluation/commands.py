"""The evaluation verbs of the command line: ``eval``, ``generate`` and ``experiment``."""

from __future__ import annotations

import argparse


def add_commands(verbs: argparse._SubParsersAction) -> None:
    """Add the evaluation verbs; each sets ``run`` to the function that carries it out."""
