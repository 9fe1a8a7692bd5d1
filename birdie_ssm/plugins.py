"""Plug-ins: user modules named in a config (a module name, also found in the working directory,
or a ``.py`` path) and installed packages' entry-point groups. Objectives, tasks, mixers and
controllers all register through this one loader."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from birdie_ssm.errors import BirdieError

_loaded_groups: set[str] = set()


def load_entry_points(group: str, what: str) -> None:
    """Import every module advertised in entry-point ``group`` (once per process); a failing
    one is a BirdieError naming the ``what`` plug-in."""
    if group in _loaded_groups:
        return
    _loaded_groups.add(group)
    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as exc:
            raise BirdieError(
                f"{what} plug-in '{ep.name}' ({ep.value}) failed to load: {exc}"
            ) from None


def import_module(name: str, what: str) -> ModuleType:
    """Import ``name``: a module name (found on sys.path or in the working directory) or the
    path of a ``.py`` file. Errors name ``what`` asked for it and what is accepted."""
    path = Path(name)
    if name.endswith(".py") or os.sep in name or "/" in name:
        if not path.is_file() or path.suffix != ".py":
            raise BirdieError(f"{what}: '{name}' is not a .py file (give a module name or a path "
                              "to a .py file)")  # fmt: skip
        key = f"birdie_ssm_plugin_{path.resolve().as_posix().replace('/', '_').replace('.', '_')}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[key]
            raise BirdieError(
                f"{what}: '{name}' failed to load: {type(exc).__name__}: {exc}"
            ) from None
        return module
    cwd = os.getcwd()
    if cwd not in sys.path:  # `python -m` puts the working directory first; a console script not
        sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BirdieError(f"{what}: cannot import '{name}': {exc}") from None
    except Exception as exc:
        raise BirdieError(f"{what}: '{name}' failed to load: {type(exc).__name__}: {exc}") from None
