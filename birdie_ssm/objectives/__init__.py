"""Training objectives: the protocol, the registry and the built-in objectives."""

from birdie_ssm.objectives import associative_recall as _associative_recall  # noqa: F401
from birdie_ssm.objectives import autoencoding as _autoencoding  # noqa: F401  (registers)
from birdie_ssm.objectives import copying as _copying  # noqa: F401
from birdie_ssm.objectives import deshuffling as _deshuffling  # noqa: F401
from birdie_ssm.objectives import infilling as _infilling  # noqa: F401
from birdie_ssm.objectives import next_token as _next_token  # noqa: F401
from birdie_ssm.objectives import prefix_lm as _prefix_lm  # noqa: F401
from birdie_ssm.objectives import selective_copying as _selective_copying  # noqa: F401
from birdie_ssm.objectives import task_format as _task_format  # noqa: F401
from birdie_ssm.objectives.arms import Arm, expand_arms
from birdie_ssm.objectives.base import (
    Example,
    Objective,
    get_objective,
    register_objective,
    registered_objectives,
)
from birdie_ssm.objectives.describe import describe_objectives

__all__ = [
    "Arm",
    "Example",
    "Objective",
    "describe_objectives",
    "expand_arms",
    "get_objective",
    "register_objective",
    "registered_objectives",
]
