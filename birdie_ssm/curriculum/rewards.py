"""Rewards from old and new per-arm validation losses, and their aggregation per objective class."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from birdie_ssm import plugins

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def birdie_reward(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Birdie's per-arm reward in [-1, 1]: positive for a drop in loss, about scale-free, NaN -> 0.

    d = (new - old) / old, s = sqrt(old * new), R = clip(-100 e tanh(e s d^3), -1, 1).
    """
    old, new = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = (new - old) / old
        s = np.sqrt(old * new)
        reward = np.clip(-100.0 * np.e * np.tanh(np.e * s * d**3), -1.0, 1.0)
    return np.where(np.isfinite(reward), reward, 0.0)


def relative_gain(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The relative drop in loss, (old - new) / old, clipped to [-1, 1]; NaN -> 0."""
    old, new = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    with np.errstate(all="ignore"):
        reward = np.clip((old - new) / old, -1.0, 1.0)
    return np.where(np.isfinite(reward), reward, 0.0)


REWARDS: plugins.Registry[RewardFn] = plugins.Registry("reward")
REWARDS.update(birdie=birdie_reward, relative=relative_gain)


def get_reward(name: str) -> RewardFn:
    """The reward function called ``name`` ("birdie" or "relative")."""
    return REWARDS.lookup(name)


def class_weights(classes: Sequence[str]) -> np.ndarray:
    """Per-arm weights 1/|class| so that ``rewards @ weights`` is the sum of the class means."""
    _, index, counts = np.unique(np.asarray(classes), return_inverse=True, return_counts=True)
    return 1.0 / counts[index]


def class_rewards(rewards: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Mean reward of each class's arms, by class name (in order of first appearance)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    order = list(dict.fromkeys(classes))
    return {
        c: float(np.mean([r for r, k in zip(rewards, classes, strict=True) if k == c]))
        for c in order
    }


def total_reward(rewards: np.ndarray, classes: Sequence[str]) -> float:
    """The sum over classes of the mean reward of the class's arms."""
    return float(np.asarray(rewards, dtype=np.float64) @ class_weights(classes))
