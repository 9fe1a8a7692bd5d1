"""Birdie's own cost in a loop beside a CPU training step of the quickstart model, in one run.

(1) The quickstart model's train step on this machine's JAX backend (the batch already on the
    device): median seconds per step.
(2) Birdie's bookkeeping per ``next_batch`` (counting each arm's target tokens, the step count)
    with the pipeline replaced by one serving ready-made batches, so only Birdie is timed.
(3) ``report`` (reward, the configured controller's update, the new mixture to the pipeline),
    per call and spread over the steps of the quickstart's evaluation schedule.
(4) For context, the in-process pipeline's batch making per step: the data cost, which
    ``data.workers`` takes off the training process (``bench data`` measures it in depth).

Run: python benchmarks/own_loop.py [--steps 20] [--calls 2000] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import numpy as np

from birdie_ssm.birdie import Birdie
from birdie_ssm.config import load_config
from birdie_ssm.curriculum import eval_steps
from birdie_ssm.pipeline import Batch
from birdie_ssm.train.build import build_run
from birdie_ssm.train.sharding import global_batch


class Replay:
    """A ``BatchSource`` serving ready-made batches in turn (no packing to time)."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches, self.i = batches, 0

    def next_batch(self) -> Batch:
        self.i += 1
        return self.batches[self.i % len(self.batches)]

    def set_mixture(self, mixture: np.ndarray) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"i": self.i}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.i = state["i"]

    def close(self) -> None:
        pass


def step_seconds(run: Any, batch: Batch, steps: int) -> float:
    """Median wall seconds of one train step (compiled first)."""
    arrays = global_batch(batch.model_inputs(), run.batch_sharding)
    params, opt_state = run.params, run.opt_state
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        params, opt_state, metrics = run.train_step(params, opt_state, arrays)
        jax.block_until_ready(metrics["loss"])
        if i:  # the first call compiles
            times.append(time.perf_counter() - start)
    run.params, run.opt_state = params, opt_state
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="train steps timed")
    parser.add_argument("--calls", type=int, default=2000, help="next_batch calls timed")
    parser.add_argument("--set", action="append", default=[], help="config key=value")
    args = parser.parse_args()
    config = load_config(None, ["data.workers=0", *args.set])
    run = build_run(config)
    birdie = run.birdie
    batches = [birdie.next_batch() for _ in range(8)]
    start = time.perf_counter()
    batches += [birdie.next_batch() for _ in range(8)]
    packing = (time.perf_counter() - start) / 8
    step = step_seconds(run, batches[0], args.steps)

    validation = list(birdie.validation_batches().values())
    own = Birdie(Replay(batches), validation, birdie.arms, birdie.controller, eval_at=[0])
    start = time.perf_counter()
    for _ in range(args.calls):
        own.next_batch()
    bookkeeping = (time.perf_counter() - start) / args.calls

    ev = config.eval
    schedule = eval_steps(config.train.steps, ev.schedule, ev.every, ev.scale)
    rng = np.random.default_rng(0)
    losses = 4.0 + rng.random(len(own.arm_names))
    report_times = []
    for at in [0, *schedule]:
        own.next_batch()
        losses = losses * (0.9 + 0.1 * rng.random(len(losses)))
        start = time.perf_counter()
        own.report(at, dict(zip(own.arm_names, losses.tolist(), strict=True)))
        report_times.append(time.perf_counter() - start)
    report = statistics.mean(report_times)
    spread = report * (len(schedule) + 1) / config.train.steps
    birdie.close()

    shape = f"batch {config.data.batch_size} x {config.data.seq_len}"
    print(f"quickstart model ({run.num_params:,} parameters, {shape}) on {jax.default_backend()}")
    print(f"{'':<44}{'ms / step':>12}{'share of step':>16}")
    rows = [
        ("train step (median)", step),
        ("Birdie next_batch bookkeeping", bookkeeping),
        (f"Birdie report ({config.controller.name}), spread", spread),
        ("Birdie's own cost (the two above)", bookkeeping + spread),
        ("pipeline packing in-process (data)", packing),
    ]
    for name, seconds in rows:
        print(f"{name:<44}{seconds * 1e3:>12.3f}{seconds / step:>16.3%}")
    print(
        f"report: {report * 1e3:.1f} ms per call, {len(schedule) + 1} calls in "
        f"{config.train.steps} steps (eval.schedule {ev.schedule}, scale {ev.scale})"
    )


if __name__ == "__main__":
    main()
