"""What ``birdie-ssm objectives`` prints: every registered objective with its parameters."""

from __future__ import annotations

import dataclasses
from typing import Any

from birdie_ssm import plugins
from birdie_ssm.objectives.base import registered_objectives


def _type_name(annotation: Any) -> str:
    return (
        annotation
        if isinstance(annotation, str)
        else getattr(annotation, "__name__", str(annotation))
    )


def describe_objectives(modules: list[str] | None = None) -> list[dict[str, Any]]:
    """Name, origin, one-line doc and parameters (name, type, default) of each objective,
    after importing ``modules`` (a config's ``objectives.modules``)."""
    for module in modules or []:
        plugins.import_module(module, "objectives.modules")
    out = []
    for name, cls in registered_objectives().items():
        doc = (cls.__doc__ or cls.Config.__doc__ or "").strip().splitlines()
        params = [
            {"name": f.name, "type": _type_name(f.type), "default": _default(f)}
            for f in dataclasses.fields(cls.Config)
        ]
        out.append(
            {"name": name, "origin": cls.origin, "doc": doc[0] if doc else "", "parameters": params}
        )
    return out


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None
