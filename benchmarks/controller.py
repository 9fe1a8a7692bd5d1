"""Curriculum controllers side by side: reward on the simulator, and update time vs training time.

(1) On the synthetic simulator (6 arms in 3 classes, 60 evaluations of 50 steps, 10 seeds): the
    cumulative reward of each controller against ``fixed`` uniform, and of the greedy optimum.
(2) Controller update time at the quickstart schedule (600 steps, evaluations at
    2, 10, 50, 100, 200, 300, 400, 600; 4 arms) as a share of training wall time: 0.4 s/step
    assumed, or with ``--measure-training`` the quickstart trainer's s/step measured in this
    process under the same CPU load. Includes the reward model's JIT compile (JAX itself warmed
    up first, as it is in a training process).

Run: python benchmarks/controller.py [--seeds 10] [--seconds-per-step 0.4] [--measure-training]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from birdie_ssm.rl import CurriculumSimulator, MixtureEnv, eval_steps, make_controller, rollout

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


def optimum_reward(seed: int, horizon: int, steps_per_action: int) -> float:
    """Cumulative reward of always playing the simulator's greedy best mixture."""
    env = MixtureEnv.simulated(horizon=horizon, steps_per_action=steps_per_action)
    env.reset(seed=seed)
    total, truncated = 0.0, False
    while not truncated:
        best = env.trainer.best_mixture(steps_per_action, candidates=1024)
        _, reward, _, truncated, _ = env.step(best)
        total += reward
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=60)
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

    print(f"\ncumulative reward on the simulator, {args.seeds} seeds x {args.horizon} evaluations")
    totals = {}
    for name in CONTROLLERS:
        per_seed = []
        for seed in range(args.seeds):
            env = MixtureEnv.simulated(horizon=args.horizon)
            controller = make_controller(name, env.trainer.arm_names, env.trainer.arm_classes)
            per_seed.append(rollout(controller, env, seed).sum())
        totals[name] = np.asarray(per_seed)
    totals["optimum"] = np.array(
        [optimum_reward(seed, args.horizon, 50) for seed in range(args.seeds)]
    )
    fixed = totals["fixed"]
    for name, values in totals.items():
        ratio = values / fixed
        print(
            f"  {name:9s} mean {values.mean():6.3f} ± {values.std():5.3f}  "
            f"vs fixed x{ratio.mean():4.2f} (min x{ratio.min():4.2f})  "
            f"beats fixed on {(values > fixed).sum()}/{len(values)} seeds"
        )


if __name__ == "__main__":
    main()
