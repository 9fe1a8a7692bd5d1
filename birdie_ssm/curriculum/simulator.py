"""A synthetic stand-in for training: per-objective learning curves with a known, drifting
best mixture."""

from __future__ import annotations

from typing import Any

import numpy as np

from birdie_ssm.curriculum.controller import Controller, normalise
from birdie_ssm.curriculum.rewards import get_reward, total_reward
from birdie_ssm.errors import BirdieError


class CurriculumSimulator:
    """Validation losses of ``n_arms`` objectives that fall toward a floor as they are trained.

    Training ``n`` steps with mixture ``p`` gives arm i the effective share ``e = T p`` (``T`` has
    ones on the diagonal and random transfer between arms off it) and shrinks its loss above the
    floor by ``exp(-rate * n * u_i(t) * sqrt(e_i))``. The learnability ``u_i(t)`` differs between
    arms by up to ``spread``-fold and oscillates with a random phase, so the best mixture drifts;
    ``best_mixture`` finds it. Everything is drawn from the seed. Implements ``MixtureTrainer``.

    ``forget`` (per step) makes an arm's loss rise by ``exp(forget * n * (1 - e_i))`` as well, so
    arms left unplayed forget; ``exponent`` replaces the square root of the share (1: linear).
    ``ForgettingBandit`` is the plain bandit scenario built on this.
    """

    def __init__(
        self,
        n_arms: int = 6,
        n_classes: int = 3,
        seed: int = 0,
        *,
        rate: float = 1e-3,
        spread: float = 10.0,
        transfer: float = 0.3,
        drift: float = 0.8,
        period: float = 2000.0,
        noise: float = 0.002,
        forget: float = 0.0,
        exponent: float = 0.5,
        reward: str = "birdie",
    ) -> None:
        if n_arms < 1 or not 1 <= n_classes <= n_arms:
            raise BirdieError(
                f"simulator needs 1 <= n_classes <= n_arms, got {n_classes}, {n_arms}"
            )
        self.arm_names = [f"arm{i}" for i in range(n_arms)]
        self.arm_classes = [f"class{i % n_classes}" for i in range(n_arms)]
        self.rate, self.spread, self.transfer = rate, spread, transfer
        self.drift, self.period, self.noise = drift, period, noise
        if forget < 0 or exponent <= 0:
            raise BirdieError(
                f"simulator needs forget >= 0 and exponent > 0, got {forget}, {exponent}"
            )
        self.forget, self.exponent = float(forget), float(exponent)
        self.reward_fn = get_reward(reward)
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Draw a new set of learning curves from ``seed`` and start at step 0."""
        n = len(self.arm_names)
        self.rng = np.random.default_rng(seed)
        self.floor = self.rng.uniform(1.0, 3.0, n)
        self.losses = self.floor + self.rng.uniform(1.5, 3.5, n)
        self.base = np.exp(self.rng.uniform(-0.5, 0.5, n) * np.log(self.spread))
        self.phase = self.rng.uniform(0.0, 2.0 * np.pi, n)
        coupling = self.rng.uniform(0.0, self.transfer, (n, n))
        np.fill_diagonal(coupling, 1.0)
        self.coupling = coupling
        self.step = 0

    def learnability(self) -> np.ndarray:
        """Each arm's current learning speed ``u_i(t)``."""
        wave = np.sin(2.0 * np.pi * self.step / self.period + self.phase)
        return self.base * (1.0 + self.drift * wave)

    def _after(self, n: int, mixture: np.ndarray) -> np.ndarray:
        share = np.clip(self.coupling @ mixture, 0.0, None)
        decay = np.exp(-self.rate * n * self.learnability() * share**self.exponent)
        learned = self.floor + (self.losses - self.floor) * decay
        if self.forget == 0.0:
            return learned
        return learned * np.exp(self.forget * n * np.clip(1.0 - share, 0.0, 1.0))

    def run_steps(self, n: int, mixture: np.ndarray) -> None:
        """Train ``n`` steps with ``mixture``."""
        self.losses = self._after(n, normalise(mixture))
        self.step += n

    def validate(self) -> np.ndarray:
        """The current losses with a little multiplicative measurement noise."""
        return self.losses * (1.0 + self.noise * self.rng.standard_normal(self.losses.shape))

    def expected_reward(self, n: int, mixture: np.ndarray) -> float:
        """The noise-free total reward of training ``n`` steps with ``mixture`` from here."""
        return total_reward(self.reward_fn(self.losses, self._after(n, mixture)), self.arm_classes)

    def best_mixture(self, n: int, candidates: int = 4096) -> np.ndarray:
        """The best of many random mixtures (and every single arm) for the next ``n`` steps."""
        size = len(self.arm_names)
        # A separate generator: asking for the optimum must not change the simulated run.
        pool = np.random.default_rng(self.step).dirichlet(np.ones(size), candidates)
        pool = np.concatenate([pool, np.eye(size), np.full((1, size), 1.0 / size)])
        scores = [self.expected_reward(n, p) for p in pool]
        return pool[int(np.argmax(scores))]


class ForgettingBandit(CurriculumSimulator):
    """A plain bandit with one clearly best arm, whose optimum is to play that arm almost only.

    Every arm is its own class. Losses start in [3, 5] and fall toward 0 in proportion to the
    share played (``exponent`` 1, no transfer, no drift): at full share one interval of
    ``interval`` steps lowers the best arm's loss by ``fast`` and every other arm's by ``fast /
    ratio``. An arm also forgets: its loss rises by ``forget_per_interval`` per interval times
    the share it was *not* played. Which arm is best is drawn from the seed unless ``best_arm``
    names it.
    """

    def __init__(
        self,
        n_arms: int = 6,
        seed: int = 0,
        *,
        fast: float = 0.05,
        ratio: float = 10.0,
        forget_per_interval: float = 0.01,
        interval: int = 50,
        noise: float = 0.002,
        reward: str = "birdie",
        best_arm: int | None = None,
    ) -> None:
        if best_arm is not None and not 0 <= best_arm < n_arms:
            raise BirdieError(f"bandit best_arm must lie in [0, {n_arms}), got {best_arm}")
        self.chosen_best = best_arm
        if not 0 < fast < 1 or ratio < 1 or interval < 1:
            raise BirdieError(
                f"bandit needs 0 < fast < 1, ratio >= 1 and interval >= 1, got {fast}, {ratio}, "
                f"{interval}"
            )
        self.fast, self.ratio = float(fast), float(ratio)
        super().__init__(
            n_arms,
            n_arms,
            seed,
            rate=-np.log1p(-fast) / interval,
            spread=1.0,
            transfer=0.0,
            drift=0.0,
            noise=noise,
            forget=np.log1p(forget_per_interval) / interval,
            exponent=1.0,
            reward=reward,
        )

    def reset(self, seed: int) -> None:
        n = len(self.arm_names)
        self.rng = np.random.default_rng(seed)
        self.floor = np.zeros(n)
        self.losses = self.rng.uniform(3.0, 5.0, n)
        drawn = int(self.rng.integers(n))
        self.best_arm = drawn if self.chosen_best is None else self.chosen_best
        self.base = np.full(n, 1.0 / self.ratio)
        self.base[self.best_arm] = 1.0
        self.phase = np.zeros(n)
        self.coupling = np.eye(n)
        self.step = 0


class InteractionBandit(ForgettingBandit):
    """The ``ForgettingBandit`` plus one helper arm whose training lowers the best arm's loss.

    As copying helps selective copying: training the helper (``helper_speed`` times the best
    arm's own speed, where the others learn ``1 / ratio`` of it) also counts ``transfer`` of its
    share toward the best arm's, so playing the helper alone improves both and beats playing
    the best arm alone. A per-arm bandit credits the best arm's gain to the best arm; a model of
    whole mixtures can see where it came from. The helper is drawn from the seed.
    """

    def __init__(
        self,
        n_arms: int = 6,
        seed: int = 0,
        *,
        helper_speed: float = 0.8,
        transfer: float = 1.0,
        **bandit: Any,
    ) -> None:
        if not 0 < helper_speed <= 1 or not 0 <= transfer <= 1 or n_arms < 2:
            raise BirdieError(
                "interaction bandit needs 0 < helper_speed <= 1, 0 <= transfer <= 1 and at least "
                f"2 arms, got {helper_speed}, {transfer}, {n_arms}"
            )
        self.helper_speed, self.helper_transfer = float(helper_speed), float(transfer)
        super().__init__(n_arms, seed, **bandit)

    def reset(self, seed: int) -> None:
        super().reset(seed)
        n = len(self.arm_names)
        self.helper = (self.best_arm + 1 + int(self.rng.integers(n - 1))) % n
        self.base[self.helper] = self.helper_speed
        self.coupling[self.best_arm, self.helper] = self.helper_transfer


def play(
    controller: Controller, sim: CurriculumSimulator, updates: int, steps: int = 50
) -> np.ndarray:
    """Let ``controller`` drive ``sim`` for ``updates`` evaluations ``steps`` apart.

    Returns the mixtures it chose, ``[updates, n_arms]`` (the one played after each evaluation;
    the initial mixture is not included).
    """
    mixture, chosen = controller.update(0, sim.validate()), []
    for _ in range(updates):
        sim.run_steps(steps, mixture)
        mixture = controller.update(sim.step, sim.validate())
        chosen.append(mixture)
    return np.asarray(chosen)
