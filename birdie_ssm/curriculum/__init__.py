"""Curriculum control: controllers, rewards, the eval schedule and the gymnasium environment."""

# Importing the controller modules registers them with ``make_controller``.
from birdie_ssm.curriculum import birdie as _birdie  # noqa: F401
from birdie_ssm.curriculum import exp3s as _exp3s  # noqa: F401
from birdie_ssm.curriculum import fixed as _fixed  # noqa: F401
from birdie_ssm.curriculum import thompson as _thompson  # noqa: F401
from birdie_ssm.curriculum import ucb as _ucb  # noqa: F401
from birdie_ssm.curriculum.controller import (
    Controller,
    controller_names,
    make_controller,
    normalise,
    register_controller,
    takes_parameter,
)
from birdie_ssm.curriculum.env import MixtureEnv, MixtureTrainer, rollout
from birdie_ssm.curriculum.rewards import class_rewards, get_reward, total_reward
from birdie_ssm.curriculum.schedule import eval_steps
from birdie_ssm.curriculum.simulator import CurriculumSimulator

__all__ = [
    "Controller",
    "CurriculumSimulator",
    "MixtureEnv",
    "MixtureTrainer",
    "class_rewards",
    "controller_names",
    "eval_steps",
    "get_reward",
    "make_controller",
    "normalise",
    "register_controller",
    "rollout",
    "takes_parameter",
    "total_reward",
]
