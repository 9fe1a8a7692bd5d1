"""Bookkeeping shared by the built-in controllers: rewards per update, losses seen, state."""

from __future__ import annotations

from typing import Any

import numpy as np

from birdie_ssm.curriculum.controller import normalise
from birdie_ssm.curriculum.rewards import class_rewards, class_weights, get_reward, total_reward
from birdie_ssm.errors import BirdieError, check_range


def floats_to_json(values: np.ndarray | None) -> list[float | None] | None:
    """A float array as a JSON-safe list (NaN becomes None)."""
    if values is None:
        return None
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def floats_from_json(values: list[float | None] | None) -> np.ndarray | None:
    """Inverse of ``floats_to_json``."""
    if values is None:
        return None
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


class ControllerBase:
    """Computes each update's per-arm rewards and keeps the mixture; subclasses choose the next one.

    Subclasses implement ``_decide(step, losses, arm_rewards, played)`` (``arm_rewards`` is None at
    the first update) and ``_state()`` / ``_load_state(state)`` for what they add.
    """

    def __init__(self, arms: list[str], classes: list[str], reward: str = "birdie") -> None:
        self.arms, self.classes = arms, classes
        self.reward_name, self.reward_fn = reward, get_reward(reward)
        # Each arm's share of the total reward: the sum over classes of class means.
        self.credit_weights = class_weights(classes)
        self.mixture = np.full(len(arms), 1.0 / len(arms))
        self.last_losses: np.ndarray | None = None
        self.updates = 0
        self.info: dict[str, Any] = {}

    @classmethod
    def create(
        cls, arms: list[str], classes: list[str], mixture: list[float] | None, **params: Any
    ) -> ControllerBase:
        """Build for a run whose configured mixture is ``mixture`` (one weight per arm).

        The learning controllers start uniform and ignore it; ``fixed`` keeps it.
        """
        return cls(arms, classes, **params)

    def initial_mixture(self) -> np.ndarray:
        """The mixture to train with before the first validation."""
        return self.mixture.copy()

    def update(
        self, step: int, val_losses: np.ndarray, played: np.ndarray | None = None
    ) -> np.ndarray:
        """Reward the mixture just played by the change in ``val_losses``; return the next one.

        ``played`` is the mixture actually trained since the last update (e.g. each arm's share
        of the target tokens); it is what the rewards are credited to. Without it the mixture
        this controller asked for stands in.
        """
        losses = np.asarray(val_losses, dtype=np.float64).reshape(-1)
        if losses.shape != (len(self.arms),):
            raise BirdieError(
                f"controller got {losses.size} validation losses for {len(self.arms)} arms"
            )
        played = self.mixture if played is None else check_played(played, len(self.arms))
        arm_rewards = None
        if self.last_losses is not None:
            arm_rewards = self.reward_fn(self.last_losses, losses)
            # An arm whose loss could not be measured keeps its last value for the next reward.
            losses = np.where(np.isfinite(losses), losses, self.last_losses)
        self.info = {"step": int(step)}
        if arm_rewards is not None:
            self.info.update(
                reward=total_reward(arm_rewards, self.classes),
                class_rewards=class_rewards(arm_rewards, self.classes),
                arm_rewards={a: float(r) for a, r in zip(self.arms, arm_rewards, strict=True)},
            )
        self.mixture = normalise(self._decide(step, losses, arm_rewards, played))
        self.last_losses = losses
        self.updates += 1
        return self.mixture.copy()

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        """Everything the next update depends on, as JSON-serialisable values."""
        return {
            "mixture": self.mixture.tolist(),
            "last_losses": floats_to_json(self.last_losses),
            "updates": self.updates,
            "info": self.info,
            **self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.mixture = np.asarray(state["mixture"], dtype=np.float64)
        self.last_losses = floats_from_json(state["last_losses"])
        self.updates = int(state["updates"])
        self.info = dict(state["info"])
        self._load_state(state)


class RewardScaler:
    """Scales rewards into [-1, 1] by the 80th percentile of recent reward magnitudes; keeps signs.

    Graves et al. map rewards into [-1, 1] by the 20th/80th percentiles of past rewards, an affine
    map that moves zero: when most arms lose a little (forgetting) the 80th percentile sits below
    zero and an arm whose loss rose came out near +1. Dividing by a magnitude instead keeps the
    scale-free part of that idea (rewards shrink as training goes on) and never flips a sign.
    """

    def __init__(self, capacity: int = 500, quantile: float = 80.0) -> None:
        if capacity < 2:
            raise BirdieError(f"reward history must hold at least 2 values, got {capacity}")
        self.capacity, self.quantile = capacity, quantile
        self.values: list[float] = []

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Add ``values`` to the history, then return them scaled (same signs)."""
        self.values = (self.values + [float(v) for v in values])[-self.capacity :]
        scale = np.percentile(np.abs(self.values), self.quantile)
        if scale < 1e-12:
            return np.zeros_like(values, dtype=np.float64)
        return np.clip(np.asarray(values, dtype=np.float64) / scale, -1.0, 1.0)


def check_played(played: np.ndarray, n_arms: int) -> np.ndarray:
    """``played`` as a mixture over ``n_arms`` arms, or a BirdieError saying what is wrong."""
    played = np.asarray(played, dtype=np.float64).reshape(-1)
    if played.shape != (n_arms,) or not np.all(np.isfinite(played)) or np.any(played < 0):
        raise BirdieError(
            f"controller got a played mixture {played.tolist()} for {n_arms} arms; "
            "it needs one non-negative share per arm"
        )
    return normalise(played)


def uniform(n: int) -> np.ndarray:
    """The uniform mixture over ``n`` arms."""
    return np.full(n, 1.0 / n)


def credited(arm_rewards: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each arm's share of the total reward (its reward times its class weight).

    Every arm's loss is observed at every evaluation (a semi-bandit), so no importance weighting
    by play share is needed; dividing by the share (Exp3's estimator) turned the small loss rise
    of an arm played at a tiny share into a huge negative value that swamped the rescaling.
    """
    return arm_rewards * weights


class DiscountedController(ControllerBase):
    """Shared by ``ucb`` and ``thompson``: discounted per-arm evidence of rescaled reward.

    At each update an arm's evidence grows by the share it was played times the number of arms
    (uniform counts one per update) and all evidence decays by ``gamma``; ``sums`` adds up
    evidence times the arm's rescaled credited reward (``RewardScaler``). Subclasses call
    ``_init_evidence`` from their constructor and ``_add_evidence`` from ``_decide``.
    """

    def _init_evidence(self, gamma: float, epsilon: float, history: int) -> None:
        self.gamma = check_range("gamma", gamma, 0.0, 1.0)
        self.epsilon = check_range("epsilon", epsilon, 0.0, 1.0)
        self.rescale = RewardScaler(history)
        self.counts = np.zeros(len(self.arms))
        self.sums = np.zeros(len(self.arms))

    def _add_evidence(self, arm_rewards: np.ndarray, played: np.ndarray) -> None:
        scaled = self.rescale(credited(arm_rewards, self.credit_weights))
        evidence = played * len(self.arms)
        self.counts = self.gamma * self.counts + evidence
        self.sums = self.gamma * self.sums + evidence * scaled

    def _state(self) -> dict[str, Any]:
        return {
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "reward_history": list(self.rescale.values),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.counts = np.asarray(state["counts"], dtype=np.float64)
        self.sums = np.asarray(state["sums"], dtype=np.float64)
        self.rescale.values = [float(v) for v in state["reward_history"]]
