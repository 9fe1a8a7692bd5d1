import numpy as np
import pytest

from birdie_ssm.curriculum import CurriculumSimulator, MixtureEnv, make_controller, rollout
from birdie_ssm.curriculum.simulator import ForgettingBandit, play
from tests.curriculum.common import TINY_BIRDIE

SEEDS = (0, 1, 2)
PARAMS = {
    "birdie": TINY_BIRDIE,
    "exp3s": {},
    "ucb": {},
}


def _total(name: str, params: dict) -> float:
    totals = []
    for seed in SEEDS:
        env = MixtureEnv.simulated(n_arms=5, horizon=30)
        controller = make_controller(name, env.trainer.arm_names, env.trainer.arm_classes, **params)
        totals.append(rollout(controller, env, seed).sum())
    return float(np.sum(totals))


def test_best_mixture_beats_uniform():
    sim = CurriculumSimulator(seed=3)
    uniform = np.full(6, 1 / 6)
    assert sim.expected_reward(50, sim.best_mixture(50)) > sim.expected_reward(50, uniform)


def test_best_mixture_drifts():
    sim = CurriculumSimulator(seed=0)
    best = []
    for _ in range(40):
        best.append(int(sim.best_mixture(50, candidates=256).argmax()))
        sim.run_steps(50, np.full(6, 1 / 6))
    assert len(set(best)) > 1


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_controller_beats_fixed_uniform(name):
    # Summed over a few seeds: each controller wins by a wide margin at 10 seeds (benchmarks/).
    assert _total(name, PARAMS[name]) > 1.05 * _total("fixed", {})


def test_forgetting_bandit_is_won_by_its_best_arm():
    for forget in (0.0, 0.01):
        sim = ForgettingBandit(seed=4, forget_per_interval=forget)
        best = sim.best_mixture(50, candidates=512)
        assert best.argmax() == sim.best_arm and best[sim.best_arm] > 0.9
    # Forgetting: an arm left unplayed for one 50-step interval loses 1%.
    sim = ForgettingBandit(seed=4, noise=0.0)
    before = sim.losses.copy()
    sim.run_steps(50, np.eye(6)[sim.best_arm])
    other = (sim.best_arm + 1) % 6
    assert sim.losses[other] == pytest.approx(1.01 * before[other])
    assert sim.losses[sim.best_arm] == pytest.approx(0.95 * before[sim.best_arm])


BIRDIE_FORGETTING = pytest.param(
    "birdie",
    0.01,
    marks=pytest.mark.xfail(
        reason="issue 12 item 5: birdie's reward model can walk to a wrong arm under forgetting",
        strict=False,
    ),
)


@pytest.mark.parametrize(
    ("name", "forget"),
    [("birdie", 0.0), BIRDIE_FORGETTING]
    + [(n, f) for n in ("exp3s", "ucb", "thompson") for f in (0.0, 0.01)],
)
def test_controllers_settle_on_the_bandits_best_arm(name, forget):
    # Issue 12: dividing rewards by play share and percentile-shifting them made an arm whose
    # loss rose (forgetting) look as good as the best one: ucb 0.26, thompson 0.52, exp3s 0.64.
    params = {"samples": 64} if name == "thompson" else {}
    if name == "birdie":
        params = {**TINY_BIRDIE, "candidates": 512}
    for seed in (0, 1, 2):
        sim = ForgettingBandit(seed=seed, forget_per_interval=forget)
        controller = make_controller(name, sim.arm_names, sim.arm_classes, **params)
        mixtures = play(controller, sim, 30)
        assert mixtures[-10:, sim.best_arm].mean() >= 0.8, (seed, mixtures[-10:].round(2))


def test_birdie_moves_at_most_max_move_plus_exploration_per_update():
    # Issue 12 item 5: 0.96 on the best arm, then 0.92 on another arm one update later.
    params = {**TINY_BIRDIE, "candidates": 512}
    for seed in (0, 1, 2):
        sim = ForgettingBandit(seed=seed)
        controller = make_controller("birdie", sim.arm_names, sim.arm_classes, **params)
        mixtures = play(controller, sim, 20)
        moves = 0.5 * np.abs(np.diff(mixtures, axis=0)).sum(axis=1)
        bound = controller.max_move + controller.explore_start
        assert moves[1:].max() <= bound + 1e-9, moves.round(2)
