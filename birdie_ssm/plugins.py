"""Components and plug-ins: ``Registry``, the one kind of registry (objectives, tasks, mixers,
controllers, rewards, loggers, scan and attention implementations, scorers), and the one loader
of user modules named in a config (a module name, also found in the working directory, or a
``.py`` path) and of installed packages' entry-point groups.

It also holds the parts of the run config's schema that components own: a component registers
the check for the config key whose accepted values it defines (``model.mixers``: the mixers,
``eval.tasks``: the tasks, ``train.loggers``: the loggers), and ``config`` asks for it by key, so
the foundation never imports the layers above it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from birdie_ssm.errors import BirdieError

T = TypeVar("T")

_loaded_groups: set[str] = set()
# A .py plug-in's module name in sys.modules -> the path the user gave (what messages show).
_file_origins: dict[str, str] = {}
# Dotted config key -> the check its owning component registered; modules that register checks,
# imported before the first check is handed out.
_config_checks: dict[str, Callable[..., Any]] = {}
_config_modules: list[str] = []


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """The hint every unknown-name message carries: "; did you mean 'x'?" naming the entry of
    ``known`` nearest to ``name``, or "" when none is near."""
    near = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.5)
    return f"; did you mean '{near[0]}'?" if near else ""


class Registry(dict[str, T]):
    """Components of one kind by name. A dict (name -> component) that also registers (a name
    another component holds is refused unless ``replace``), looks up (an unknown name names the
    nearest and every registered one) and lists; the modules advertised in entry-point ``group``
    register too, at the first lookup of an unknown name or the first listing."""

    def __init__(self, what: str, group: str | None = None, error: type[Exception] = BirdieError):
        super().__init__()
        self.what, self.group, self.error = what, group, error

    def register(self, name: str, component: T, *, replace: bool = False) -> T:
        """Add ``component`` as ``name`` and return it. The same component again (or, for a
        class, one of the same name: its module imported anew) replaces it."""
        held = self.get(name)
        if held is not None and not replace and not _same(held, component):
            raise ValueError(f"{self.what} '{name}' is already registered ({_label(held)})")
        self[name] = component
        return component

    def add(self, name: str) -> Callable[[T], T]:
        """Decorator form of ``register``."""
        return lambda component: self.register(name, component)

    def load_entry_points(self) -> None:
        """Import the modules advertised in this registry's entry-point group (once)."""
        if self.group is not None:
            load_entry_points(self.group, self.what)

    def lookup(self, name: str) -> T:
        """The component called ``name``; an unknown name is ``error`` (a one-line message)."""
        if name not in self:
            self.load_entry_points()
        if name not in self:
            raise self.error(f"unknown {self.what} '{name}'{did_you_mean(name, self)} "
                             f"(registered: {', '.join(self)})")  # fmt: skip
        return self[name]

    def names(self) -> list[str]:
        """Every registered name, in registration order (entry points loaded first)."""
        self.load_entry_points()
        return list(self)


def _same(a: object, b: object) -> bool:
    return a is b or (
        isinstance(a, type) and isinstance(b, type) and a.__qualname__ == b.__qualname__
    )


def _label(component: object) -> str:
    return getattr(component, "__qualname__", type(component).__qualname__)


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
