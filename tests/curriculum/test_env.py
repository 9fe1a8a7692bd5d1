import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from birdie_ssm.curriculum import MixtureEnv, MixtureTrainer, make_controller, rollout
from birdie_ssm.curriculum.rewards import birdie_reward, total_reward


class FakeTrainer:
    """Implements the trainer side of the protocol: each arm's loss falls with its share."""

    arm_names = ["ntp", "infill_a", "infill_b"]
    arm_classes = ["ntp", "infill", "infill"]

    def __init__(self) -> None:
        self.losses = np.array([4.0, 5.0, 6.0])
        self.calls: list[tuple[int, np.ndarray]] = []

    def run_steps(self, n: int, mixture: np.ndarray) -> None:
        self.calls.append((n, mixture.copy()))
        self.losses = self.losses * (1.0 - 0.001 * n * mixture)

    def validate(self) -> np.ndarray:
        return self.losses.copy()


def test_check_env_passes_on_the_simulator():
    check_env(MixtureEnv.simulated(horizon=5), skip_render_check=True)


def test_env_drives_a_trainer_through_the_protocol():
    trainer = FakeTrainer()
    assert isinstance(trainer, MixtureTrainer)
    env = MixtureEnv(trainer, steps_per_action=10, horizon=2)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs, [4.0, 5.0, 6.0])
    before = trainer.losses.copy()
    obs, reward, terminated, truncated, info = env.step(np.array([2.0, 1.0, 1.0], np.float32))
    n, mixture = trainer.calls[-1]
    assert n == 10
    np.testing.assert_allclose(mixture, [0.5, 0.25, 0.25])
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert reward == pytest.approx(
        total_reward(birdie_reward(before, trainer.losses), trainer.arm_classes)
    )
    assert reward > 0 and not terminated and not truncated
    _, _, _, truncated, _ = env.step(np.zeros(3, np.float32))
    np.testing.assert_allclose(trainer.calls[-1][1], 1 / 3)
    assert truncated


def test_simulated_env_is_reproducible_by_seed():
    env = MixtureEnv.simulated(horizon=3)
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=7)
        steps = [env.step(np.full(6, 1 / 6, np.float32))[:2] for _ in range(3)]
        runs.append((obs, steps))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert [r for _, r in runs[0][1]] == [r for _, r in runs[1][1]]


def test_rollout_collects_one_reward_per_step():
    env = MixtureEnv(FakeTrainer(), steps_per_action=20, horizon=4)
    controller = make_controller("exp3s", env.trainer.arm_names, env.trainer.arm_classes)
    rewards = rollout(controller, env, seed=0)
    assert rewards.shape == (4,) and np.all(rewards > 0)


class SkewedTrainer(FakeTrainer):
    """Trains another mixture than the action (as the pipeline may) and says which."""

    def run_steps(self, n: int, mixture: np.ndarray) -> None:
        self.realised = 0.5 * mixture + 0.5 * np.array([1.0, 0.0, 0.0])
        super().run_steps(n, self.realised)

    def realised_mixture(self) -> np.ndarray:
        return self.realised


def test_rollout_credits_the_controller_with_the_realised_mixture():
    trainer = SkewedTrainer()
    env = MixtureEnv(trainer, steps_per_action=10, horizon=3)
    controller = make_controller("fixed", trainer.arm_names, trainer.arm_classes)
    seen = []
    update = controller.update

    def spy(step, losses, played=None):
        seen.append(played)
        return update(step, losses, played=played)

    controller.update = spy
    rollout(controller, env, seed=0)
    assert seen[0] is None and len(seen) == 4
    for played in seen[1:]:
        np.testing.assert_allclose(played, [2 / 3, 1 / 6, 1 / 6])
    _, _, _, _, info = env.step(np.array([0.0, 0.0, 1.0], np.float32))
    np.testing.assert_allclose(info["played"], [0.5, 0.0, 0.5])
