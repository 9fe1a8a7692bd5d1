"""Model family: ``BirdieLM`` over a block pattern of registered temporal mixers."""

from birdie_ssm.models.decode import generate
from birdie_ssm.models.lm import BirdieLM, ResidualBlock, build_model, count_params
from birdie_ssm.models.registry import (
    Mixer,
    MixerConfig,
    get_mixer,
    register_mixer,
    registered_mixers,
)

__all__ = [
    "BirdieLM",
    "Mixer",
    "MixerConfig",
    "ResidualBlock",
    "build_model",
    "count_params",
    "generate",
    "get_mixer",
    "register_mixer",
    "registered_mixers",
]
