"""``MixtureEnv``: the curriculum as a gymnasium environment (action = mixture, reward = val
gain)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from birdie_ssm.curriculum.controller import Controller
from birdie_ssm.curriculum.rewards import get_reward, total_reward
from birdie_ssm.curriculum.simulator import CurriculumSimulator


@runtime_checkable
class MixtureTrainer(Protocol):
    """What the environment drives: the trainer, or the simulator standing in for it."""

    arm_names: list[str]
    arm_classes: list[str]

    def run_steps(self, n: int, mixture: np.ndarray) -> None: ...

    def validate(self) -> np.ndarray: ...


@runtime_checkable
class Reseedable(Protocol):
    """A backing that can start over from a seed (the simulator; a trainer cannot rewind)."""

    def reset(self, seed: int) -> None: ...


@runtime_checkable
class Realising(Protocol):
    """A backing that reports the mixture it really trained (the trainer: target-token shares)."""

    def realised_mixture(self) -> np.ndarray | None: ...


class MixtureEnv(gym.Env):
    """Each step trains ``steps_per_action`` steps with the action as the mixture, then validates.

    Observation: per-arm validation losses. Reward: the configured reward of the change, summed
    over objective classes. An episode is truncated after ``horizon`` steps. Resetting a trainer
    backing only re-reads its losses: training is not undone. ``info["played"]`` is the mixture
    really trained during the step (the backing's ``realised_mixture()`` where it has one, the
    action otherwise); pass it to a controller's ``update(..., played=)``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        trainer: MixtureTrainer,
        *,
        steps_per_action: int = 50,
        horizon: int = 64,
        reward: str = "birdie",
    ) -> None:
        self.trainer = trainer
        self.steps_per_action, self.horizon = steps_per_action, horizon
        self.reward_fn = get_reward(reward)
        n = len(trainer.arm_names)
        self.action_space = gym.spaces.Box(0.0, 1.0, (n,), dtype=np.float32)
        high = np.finfo(np.float32).max
        self.observation_space = gym.spaces.Box(0.0, high, (n,), dtype=np.float32)
        self.losses = np.zeros(n)
        self.t = 0

    @classmethod
    def simulated(
        cls,
        *,
        steps_per_action: int = 50,
        horizon: int = 64,
        reward: str = "birdie",
        **simulator: Any,
    ) -> MixtureEnv:
        """An environment backed by a ``CurriculumSimulator`` built from ``simulator`` keywords."""
        backing = CurriculumSimulator(reward=reward, **simulator)
        return cls(backing, steps_per_action=steps_per_action, horizon=horizon, reward=reward)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if isinstance(self.trainer, Reseedable):
            self.trainer.reset(int(self.np_random.integers(2**31)))
        self.losses = np.asarray(self.trainer.validate(), dtype=np.float64)
        self.t = 0
        return self.losses.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        weights = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64)), 0.0, None)
        total = weights.sum()
        mixture = weights / total if total > 0 else np.full(weights.size, 1.0 / weights.size)
        self.trainer.run_steps(self.steps_per_action, mixture)
        played = self.trainer.realised_mixture() if isinstance(self.trainer, Realising) else None
        played = mixture if played is None else np.asarray(played, dtype=np.float64)
        losses = np.asarray(self.trainer.validate(), dtype=np.float64)
        arm_rewards = self.reward_fn(self.losses, losses)
        self.losses = np.where(np.isfinite(losses), losses, self.losses)
        self.t += 1
        reward = total_reward(arm_rewards, self.trainer.arm_classes)
        info = {"arm_rewards": arm_rewards, "mixture": mixture, "played": played}
        return losses.astype(np.float32), reward, False, self.t >= self.horizon, info


def rollout(controller: Controller, env: MixtureEnv, seed: int) -> np.ndarray:
    """Let ``controller`` choose every mixture for one episode; the reward of each step."""
    losses, _ = env.reset(seed=seed)
    mixture = controller.update(0, losses)
    rewards = []
    truncated = False
    while not truncated:
        losses, reward, _, truncated, info = env.step(mixture)
        rewards.append(reward)
        mixture = controller.update(env.t * env.steps_per_action, losses, played=info["played"])
    return np.asarray(rewards)
