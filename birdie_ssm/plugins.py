"""Plug-ins: user modules named in a config (a module name, also found in the working directory,
or a ``.py`` path) and installed packages' entry-point groups. Objectives, tasks, mixers and
controllers all register through this one loader.

It also holds the parts of the run config's schema that components own: a component registers
the check for the config key whose accepted values it defines (``model.mixers``: the mixers,
``eval.tasks``: the tasks, ``train.loggers``: the loggers), and ``config`` asks for it by key, so
the foundation never imports the layers above it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from birdie_ssm.errors import BirdieError

_loaded_groups: set[str] = set()
# A .py plug-in's module name in sys.modules -> the path the user gave (what messages show).
_file_origins: dict[str, str] = {}
# Dotted config key -> the check its owning component registered; modules that register checks,
# imported before the first check is handed out.
_config_checks: dict[str, Callable[..., Any]] = {}
_config_modules: list[str] = []


def register_config_check(key: str, check: Callable[..., Any]) -> None:
    """Make ``check`` what validates config key ``key`` (dotted, e.g. ``eval.tasks``). It raises
    ValueError or BirdieError naming what is accepted; what it returns is the key's parsed form."""
    _config_checks[key] = check


def declare_config_modules(*modules: str) -> None:
    """Name modules that register config checks; each is imported once, when a check is first
    asked for (so declaring them costs nothing until a config is validated)."""
    _config_modules.extend(m for m in modules if m not in _config_modules)


def config_check(key: str) -> Callable[..., Any]:
    """The check registered for config key ``key``, after importing the declared modules."""
    while _config_modules:  # taken off the list first: a nested call never imports one twice
        importlib.import_module(_config_modules.pop(0))
    try:
        return _config_checks[key]
    except KeyError:
        raise RuntimeError(f"no component registered a check for config key '{key}'") from None


def origin(module_name: str) -> str:
    """How to show where a module came from: the path given for a ``.py`` plug-in, else its name."""
    return _file_origins.get(module_name, module_name)


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
        accepted = "give a module name or the path of an existing .py file"
        if not path.exists():
            raise BirdieError(f"{what}: '{name}' does not exist ({accepted})")
        if not path.is_file() or path.suffix != ".py":
            kind = "a directory" if path.is_dir() else "not a .py file"
            raise BirdieError(f"{what}: '{name}' is {kind} ({accepted})")
        key = f"birdie_ssm_plugin_{path.resolve().as_posix().replace('/', '_').replace('.', '_')}"
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        _file_origins[key] = name
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
