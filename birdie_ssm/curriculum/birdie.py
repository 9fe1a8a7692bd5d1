"""The ``birdie`` controller: candidate mixtures scored by a sampled reward model; the best k
averaged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from birdie_ssm.curriculum.base import ControllerBase, uniform
from birdie_ssm.curriculum.controller import register_controller
from birdie_ssm.curriculum.reward_model import fit_posterior, predict_changes
from birdie_ssm.errors import check_range


@dataclass(frozen=True)
class BirdieConfig:
    """The ``birdie`` controller's parameters (``controller.params``); see ``BirdieController``."""

    gamma: float = 0.9
    prior_own: float = 0.4
    prior_cross: float = 0.2
    prior_shared: float = 0.1
    draw_width: float = 0.35
    prior_concave: float = 0.8
    prior_trend: float = 2.0
    prior_noise: float = 0.1
    candidates: int = 2048
    sparse_fraction: float = 0.5
    max_support: int = 3
    top_k: int = 8
    floor: float = 0.005
    max_move: float = 0.3
    warmup_steps: int = 50
    max_transitions: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        inf = float("inf")
        for name in ("candidates", "max_support", "top_k", "max_transitions"):
            check_range(name, getattr(self, name), 1, 1 << 31, integer=True)
        for name in ("prior_own", "prior_cross", "prior_shared", "prior_noise"):
            check_range(name, getattr(self, name), 0.0, inf, open_low=True)
        for name in ("draw_width", "prior_concave", "prior_trend"):
            check_range(name, getattr(self, name), 0.0, inf)
        check_range("warmup_steps", self.warmup_steps, 0, 1 << 31, integer=True)
        for name in ("gamma", "sparse_fraction", "floor", "max_move"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        if self.top_k > self.candidates:
            raise ValueError(
                f"parameter 'top_k' must be <= candidates ({self.candidates}), got {self.top_k}"
            )


@register_controller("birdie")
class BirdieController(ControllerBase):
    """Birdie's controller (Blouir et al. 2024) with a reward model that knows what it does
    not know.

    The history holds, for each evaluation, the per-arm losses, the mixture trained before it
    and the steps since the last one. At each evaluation a discounted Bayesian linear model of
    each arm's log-loss change per step given the mixture, with cross-arm terms (see
    ``reward_model``), is refit to the last ``max_transitions`` transitions and one model is drawn
    from its posterior with its spread scaled by ``draw_width`` (tempered Thompson sampling: the
    draw is the exploration; a full-width draw explored too often where reward comes early). Under
    that draw each of ``candidates`` mixtures (uniform simplex samples, plus a ``sparse_fraction``
    on at most ``max_support`` arms, plus every single arm) gets the predicted new losses over an
    interval as long as the last, their per-arm reward by the configured formula, and the
    class-aggregated total (arm rewards averaged within a class, class rewards summed). The
    ``top_k`` best are averaged, given a floor of ``floor`` per arm, and the mixture moves toward
    that target by at most ``max_move`` (total variation) from the mixture it returned last.
    Until step ``warmup_steps`` the mixture stays uniform. Parameters: ``BirdieConfig``.
    """

    Config = BirdieConfig

    def __init__(
        self,
        arms: list[str],
        classes: list[str],
        reward: str = "birdie",
        config: BirdieConfig | None = None,
    ) -> None:
        super().__init__(arms, classes, reward)
        self.config = config = BirdieConfig() if config is None else config
        # At most half the mass goes to the floor, however many arms there are.
        self.floor = min(config.floor, 0.5 / len(arms))
        self.rng = np.random.default_rng(config.seed)
        self.steps_seen: list[int] = []  # the step of each evaluation
        self.losses_seen: list[list[float]] = []  # losses at each evaluation (NaN: not measured)
        self.actions_seen: list[list[float]] = []  # the mixture trained before each evaluation
        self._raw: np.ndarray | None = None

    @classmethod
    def create(
        cls,
        arms: list[str],
        classes: list[str],
        mixture: list[float] | None,
        reward: str = "birdie",
        **params: Any,
    ) -> BirdieController:
        """Built from ``controller.params`` (the fields of ``BirdieConfig``); starts uniform."""
        return cls(arms, classes, reward, BirdieConfig(**params))

    def update(
        self, step: int, val_losses: np.ndarray, played: np.ndarray | None = None
    ) -> np.ndarray:
        # Keep which losses were really measured: the base fills a missing one with its last value,
        # which would read as "no change" to the model.
        self._raw = np.asarray(val_losses, dtype=np.float64).reshape(-1)
        return super().update(step, val_losses, played)

    def _candidates(self) -> np.ndarray:
        """Uniform simplex samples, sparse ones on 1..max_support random arms, and each single
        arm."""
        n = len(self.arms)
        sparse = int(round(self.config.candidates * self.config.sparse_fraction))
        dense = self.rng.dirichlet(np.ones(n), self.config.candidates - sparse)
        support = self.rng.integers(1, min(self.config.max_support, n) + 1, sparse)
        ranks = self.rng.random((sparse, n)).argsort(axis=1).argsort(axis=1)
        weights = self.rng.standard_gamma(1.0, (sparse, n)) * (ranks < support[:, None])
        # The corners too: a sampled simplex point rarely puts nearly all weight on one arm.
        return np.concatenate([dense, weights / weights.sum(axis=1, keepdims=True), np.eye(n)])

    def _transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The last ``max_transitions`` (mixture, log-loss change, valid, steps) transitions."""
        keep = slice(-self.config.max_transitions - 1, None)
        losses = np.asarray(self.losses_seen, dtype=np.float64)[keep]
        steps = np.asarray(self.steps_seen, dtype=np.float64)[keep]
        # Entry k's mixture is what was trained between evaluations k - 1 and k.
        mixtures = np.asarray(self.actions_seen, dtype=np.float64)[keep][1:]
        with np.errstate(all="ignore"):
            changes = np.log(losses[1:]) - np.log(losses[:-1])
        valid = np.isfinite(changes)
        return mixtures, np.where(valid, changes, 0.0), valid, np.maximum(np.diff(steps), 1.0)

    def _target(self, losses: np.ndarray) -> np.ndarray:
        """The best ``top_k`` candidates' mean under one posterior draw of the reward model."""
        mixtures, changes, valid, lengths = self._transitions()
        posterior = fit_posterior(
            mixtures,
            changes,
            valid,
            lengths,
            gamma=self.config.gamma,
            prior_own=self.config.prior_own,
            prior_cross=self.config.prior_cross,
            prior_shared=self.config.prior_shared,
            prior_concave=self.config.prior_concave,
            prior_trend=self.config.prior_trend,
            prior_noise=self.config.prior_noise,
        )
        # One draw per decision: Thompson sampling, so an arm the model is unsure of gets tried.
        effects = posterior.sample(self.rng, 1, self.config.draw_width)
        pool = self._candidates()
        horizon = lengths[-1] / np.mean(lengths)
        level = np.where(np.isfinite(losses) & (losses > 0), losses, 1.0)
        change = np.clip(horizon * predict_changes(effects, pool)[0], -20.0, 20.0)  # [C, N]
        scores = self.reward_fn(level, level * np.exp(change)) @ self.credit_weights
        best = np.argsort(scores)[-self.config.top_k :]
        self.info.update(
            predicted_reward=float(scores[best].mean()), model_noise=float(posterior.noise.mean())
        )
        return pool[best].mean(axis=0)

    def _decide(
        self, step: int, losses: np.ndarray, arm_rewards: np.ndarray | None, played: np.ndarray
    ) -> np.ndarray:
        raw = self._raw if self._raw is not None else losses
        self.steps_seen.append(int(step))
        self.losses_seen.append([float(v) if np.isfinite(v) else float("nan") for v in raw])
        self.actions_seen.append(played.tolist())
        n = len(self.arms)
        if step < self.config.warmup_steps or arm_rewards is None:
            target = uniform(n)
        else:
            target = (1.0 - n * self.floor) * self._target(losses) + self.floor
        # Move from the last mixture toward the target by at most max_move (total variation);
        # both carry the floor, so every point between them does too.
        distance = 0.5 * np.abs(target - self.mixture).sum()
        reach = min(1.0, self.config.max_move / max(distance, 1e-12))
        return self.mixture + reach * (target - self.mixture)

    def _state(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "steps_seen": self.steps_seen,
            "losses_seen": [[None if np.isnan(v) else v for v in row] for row in self.losses_seen],
            "actions_seen": self.actions_seen,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.steps_seen = [int(s) for s in state["steps_seen"]]
        self.losses_seen = [
            [float("nan") if v is None else float(v) for v in row] for row in state["losses_seen"]
        ]
        self.actions_seen = [list(map(float, x)) for x in state["actions_seen"]]
