"""The mixer registry: temporal mixers by name, each with its own parameter dataclass.

A mixer is an ``nnx.Module`` class registered with ``@register_mixer("name")``. It carries a
dataclass ``Config`` (its own parameters, checked in ``__post_init__``, optionally against the
whole model in ``check``), is built as ``cls(model_config, params, bidirectional, rngs=rngs)`` and
implements the ``Mixer`` interface below. Built-in mixers are the modules that
``models/__init__.py`` imports; third-party ones register on import, or through the
``birdie_ssm.mixers`` entry-point group.

The mixers own what ``model.mixer`` and ``model.mixers`` accept: this module registers those
checks with ``plugins.register_config_check``, which ``config.ModelConfig`` composes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import jax
from flax import nnx

from birdie_ssm import plugins

if TYPE_CHECKING:
    from birdie_ssm.config import ModelConfig
    from birdie_ssm.models.masks import SeqContext, StepContext

# ValueError, not BirdieError: model.mixer's check, and nnx code, raise ValueError.
_REGISTRY: plugins.Registry[type[Mixer]] = plugins.Registry(
    "mixer", "birdie_ssm.mixers", ValueError
)


@dataclasses.dataclass(frozen=True)
class MixerConfig:
    """Base of mixer parameter dataclasses (optional): fields, checks in ``__post_init__``."""

    def check(self, model: ModelConfig) -> None:
        """Raise ValueError, naming the keys, if these parameters do not fit ``model``."""


class Mixer(nnx.Module):
    """A temporal mixer: [B, L, width] -> [B, L, width], never reading a later target position
    nor another segment; with ``bidirectional`` it may read its whole prefix."""

    Config: ClassVar[type] = MixerConfig

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, Any]:
        """Whole sequence: the output and the state ``to_cache`` turns into a decode cache."""
        raise NotImplementedError

    def to_cache(self, state: Any, max_len: int) -> Any:
        """Decode cache after a prefill of the prompt (``max_len`` slots for prompt + new
        tokens)."""
        del max_len
        return state

    def step(self, x: jax.Array, cache: Any, ctx: StepContext) -> tuple[jax.Array, Any]:
        """One decode step: x [B, width] -> (y [B, width], new cache)."""
        raise NotImplementedError


def register_mixer(name: str) -> Callable[[type[Mixer]], type[Mixer]]:
    """Class decorator registering a mixer under ``name`` (what model.mixer names)."""

    def wrap(cls: type[Mixer]) -> type[Mixer]:
        if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
            raise TypeError(f"mixer '{name}' needs a dataclass Config")
        cls.name = name
        return _REGISTRY.register(name, cls)

    return wrap


def registered_mixers() -> dict[str, type[Mixer]]:
    """Every registered mixer by name (entry points loaded on the first call)."""
    return {name: _REGISTRY[name] for name in sorted(_REGISTRY.names())}


def get_mixer(name: str) -> type[Mixer]:
    """The mixer class registered as ``name``; ValueError naming the registered ones if none."""
    return _REGISTRY.lookup(name)


def mixer_config(name: str, params: dict[str, Any]) -> Any:
    """The mixer's Config built from ``params``; ValueError naming model.mixers.<name>.<key>."""
    cls = get_mixer(name).Config
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(params, dict):
        raise ValueError(f"model.mixers.{name} must be a mapping of parameters, got {params!r}")
    for key in params:
        if key not in fields:
            raise ValueError(
                f"mixer '{name}' has no parameter '{key}'{plugins.did_you_mean(key, fields)} "
                f"(accepted: {', '.join(sorted(fields)) or 'none'})"
            )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model.mixers.{name}: {exc}") from None


# The mixers' part of the run config's schema (config.ModelConfig asks for these by key).
plugins.register_config_check("model.mixer", get_mixer)
plugins.register_config_check("model.mixers", mixer_config)

__all__ = [
    "Mixer",
    "MixerConfig",
    "get_mixer",
    "mixer_config",
    "register_mixer",
    "registered_mixers",
]
