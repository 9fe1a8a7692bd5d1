"""Model family: ``BirdieLM`` over a block pattern of registered temporal mixers."""

# The built-in mixers: importing a module registers it (adding one: one line here).
# isort: off
from birdie_ssm.models import gated as _gated  # noqa: F401
from birdie_ssm.models import rglru as _rglru  # noqa: F401
from birdie_ssm.models import attention as _attention  # noqa: F401
from birdie_ssm.models import recurrentgemma as _recurrentgemma  # noqa: F401
from birdie_ssm.models import mamba as _mamba  # noqa: F401
from birdie_ssm.models import s4d as _s4d  # noqa: F401
from birdie_ssm.models import s5 as _s5  # noqa: F401
from birdie_ssm.models import lru as _lru  # noqa: F401

# isort: on
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
