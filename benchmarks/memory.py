"""Resident memory over a long training run: it must stay flat.

Trains a small model for many steps (validation, controller updates and checkpoints included) and
samples the process's RSS; prints the samples and the growth after warm-up.

    python benchmarks/memory.py [--steps 2000] [--every 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100, help="sample, validate and checkpoint")
    parser.add_argument("--controller", default="exp3s")
    args = parser.parse_args()

    from birdie_ssm.config import load_config
    from birdie_ssm.curriculum import eval_steps
    from birdie_ssm.train.trainer import Trainer

    config = load_config(
        None,
        [
            "model.width=64",
            "model.depth=2",
            "data.seq_len=128",
            "data.batch_size=8",
            "data.val_batches_per_arm=1",
            f"train.steps={args.steps}",
            f"train.checkpoint_every={args.every}",
            "train.progress=false",
            "eval.schedule=every",
            f"eval.every={args.every}",
            f"controller.name={args.controller}",
        ],
    )
    assert eval_steps(args.steps, "every", args.every)
    samples: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir)
        start = time.perf_counter()
        # Drive the loop in slices so RSS can be sampled between them.
        for stop in range(args.every, args.steps + 1, args.every):
            trainer.config.train.steps = stop
            trainer.fit()
            samples.append((stop, rss_mb()))
        trainer.close()
        elapsed = time.perf_counter() - start
    print(f"{'step':>6}  {'RSS MiB':>8}")
    for step, mb in samples:
        print(f"{step:>6}  {mb:8.1f}")
    warm = samples[min(2, len(samples) - 1)]
    last = samples[-1]
    per_k = (last[1] - warm[1]) / max(last[0] - warm[0], 1) * 1000
    print(
        f"\nRSS after warm-up (step {warm[0]}): {warm[1]:.1f} MiB; at step {last[0]}: "
        f"{last[1]:.1f} MiB; growth {last[1] - warm[1]:+.1f} MiB "
        f"({per_k:+.2f} MiB per 1000 steps); "
        f"{args.steps} steps in {elapsed:.0f} s"
    )


if __name__ == "__main__":
    main()
