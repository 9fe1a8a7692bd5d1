"""Curriculum controllers side by side: reward on the simulator, and update time vs training time.

(1) Cumulative reward of each controller against ``fixed`` uniform on four simulated scenarios,
    side by side: the plain simulator (6 arms in 3 classes, drifting learnability, no forgetting),
    the same with forgetting (an unplayed arm's loss rises 1% per 50-step interval), strong drift
    with 5x the measurement noise and forgetting, and the ``ForgettingBandit`` (one arm learns 10x
    faster); then each controller's best-arm share on the bandit with and without forgetting.
(2) Controller update time at the quickstart schedule (600 steps, evaluations at
    2, 10, 50, 100, 200, 300, 400, 600; 4 arms) as a share of training wall time: 0.4 s/step
    assumed, or with ``--measure-training`` the quickstart trainer's s/step measured in this
    process under the same CPU load. Includes the reward model's JIT compile (JAX itself warmed
    up first, as it is in a training process).

Run: python benchmarks/controller.py [--seeds 5] [--horizon 40] [--seconds-per-step 0.4] [--measure-training]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from birdie_ssm.curriculum import (
    CurriculumSimulator,
    MixtureEnv,
    eval_steps,
    make_controller,
    rollout,
)
from birdie_ssm.curriculum.simulator import ForgettingBandit, play

CONTROLLERS = ["fixed", "birdie", "exp3s", "ucb", "thompson"]


def update_seconds(name: str, steps: list[int]) -> list[float]:
    """Wall time of each update of ``name`` over the eval schedule ``steps`` (simulated losses)."""
    sim = CurriculumSimulator(n_arms=4, n_classes=3, seed=0)
    controller = make_controller(name, sim.arm_names, sim.arm_classes)
    mixture, done, times = controller.initial_mixture(), 0, []
    for step in steps:
        sim.run_steps(step - done, mixture)
        done = step
        losses = sim.validate()
        start = time.perf_counter()
        mixture = controller.update(step, losses)
        times.append(time.perf_counter() - start)
    return times


def measured_seconds_per_step(steps: int = 10) -> float:
    """Seconds per step of the quickstart trainer, after its compile."""
    from birdie_ssm.config import Config
    from birdie_ssm.train.trainer import Trainer

    trainer = Trainer(Config(), tempfile.mkdtemp(), progress=False)
    mixture = np.full(len(trainer.arm_names), 1.0 / len(trainer.arm_names))
    trainer.run_steps(2, mixture)
    start = time.perf_counter()
    trainer.run_steps(steps, mixture)
    return (time.perf_counter() - start) / steps


# Each scenario: seed -> a fresh simulator. Forgetting: 1% loss rise per unplayed 50-step interval.
FORGET = 0.01 / 50
SCENARIOS: dict[str, Callable[[int], CurriculumSimulator]] = {
    "plain": lambda seed: CurriculumSimulator(seed=seed),
    "forgetting": lambda seed: CurriculumSimulator(seed=seed, forget=FORGET),
    "drift+noise": lambda seed: CurriculumSimulator(
        seed=seed, drift=0.95, period=1000.0, noise=0.01, forget=FORGET
    ),
    "bandit": lambda seed: ForgettingBandit(seed=seed),
}


def episode_reward(name: str, sim: CurriculumSimulator, horizon: int, seed: int) -> float:
    """Cumulative reward of ``name`` driving ``sim`` for ``horizon`` evaluations 50 steps apart."""
    env = MixtureEnv(sim, horizon=horizon)
    controller = make_controller(name, sim.arm_names, sim.arm_classes)
    return float(rollout(controller, env, seed).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--seconds-per-step", type=float, default=0.4)
    parser.add_argument("--measure-training", action="store_true")
    args = parser.parse_args()

    # Timing first, so birdie's reward-model compile is counted.
    per_step, how = args.seconds_per_step, "assumed"
    if args.measure_training:
        per_step, how = measured_seconds_per_step(), "measured"
    else:
        jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.zeros(1)))
    steps = eval_steps(600, "birdie", scale=0.2)
    train_s = 600 * per_step
    print(f"update time at the quickstart schedule {steps} (4 arms)")
    print(f"{how} training wall time: 600 steps x {per_step:.3f} s/step = {train_s:.0f} s")
    for name in CONTROLLERS:
        times = update_seconds(name, steps)
        print(
            f"  {name:9s} total {sum(times):7.3f} s  first {times[0]:6.3f} s  "
            f"rest mean {np.mean(times[1:]) * 1e3:7.1f} ms  share {100 * sum(times) / train_s:5.2f}%"
        )

    print(
        f"\ncumulative reward, mean of {args.seeds} seeds x {args.horizon} evaluations, and its "
        "ratio to fixed uniform's (n/a where fixed's is not positive)"
    )
    results = {name: {} for name in CONTROLLERS}
    for scenario, make in SCENARIOS.items():
        for name in CONTROLLERS:
            results[name][scenario] = np.array(
                [episode_reward(name, make(seed), args.horizon, seed) for seed in range(args.seeds)]
            )
    width = 20
    print(f"  {'':9s}" + "".join(f"{s:>{width}s}" for s in SCENARIOS))
    for name in CONTROLLERS:
        cells = []
        for scenario in SCENARIOS:
            mean, fixed = results[name][scenario].mean(), results["fixed"][scenario].mean()
            ratio = f"x{mean / fixed:.2f}" if fixed > 0 else "n/a"
            cells.append(f"{mean:7.2f} ({ratio})")
        print(f"  {name:9s}" + "".join(f"{c:>{width}s}" for c in cells))
    print("\nbandit: best-arm share over the last 10 of 30 updates (uniform 0.17)")
    for forget in (0.0, 0.01):
        shares = {name: [] for name in CONTROLLERS}
        for seed in range(args.seeds):
            for name in CONTROLLERS:
                sim = ForgettingBandit(seed=seed, forget_per_interval=forget)
                controller = make_controller(name, sim.arm_names, sim.arm_classes)
                shares[name].append(play(controller, sim, 30)[-10:, sim.best_arm].mean())
        row = "  ".join(f"{n} {np.mean(v):.2f} (min {np.min(v):.2f})" for n, v in shares.items())
        print(f"  forget {forget:.2f}/interval: {row}")


if __name__ == "__main__":
    main()
