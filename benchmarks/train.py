"""Throughput of the quickstart train step, and how much of it the data pipeline costs.

    python benchmarks/train.py [--steps 30] [--set key=value ...]

Prints tokens/s of the jitted train step alone (batches made beforehand), of the in-process
pipeline alone, and of the two together as the trainer runs them; then the train step's model
FLOP rate (train/flops.py) beside the device's peak, measured in the same run on a CPU (a
float32 matmul), from the spec table on a GPU, and their ratio: the step's MFU.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import jax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    from birdie_ssm.config import load_config
    from birdie_ssm.train import flops
    from birdie_ssm.train.sharding import global_batch
    from birdie_ssm.train.trainer import Trainer

    config = load_config(None, ["train.progress=false", *args.set])
    tokens = config.data.batch_size * config.data.seq_len
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir)
        for _ in range(3):  # compile and warm up
            trainer.train_one()
        jax.block_until_ready(trainer.params)

        start = time.perf_counter()
        batches = [trainer.run.pipeline.next_batch() for _ in range(args.steps)]
        data_s = time.perf_counter() - start

        arrays = [global_batch(b.as_dict(), trainer.run.batch_sharding) for b in batches]
        start = time.perf_counter()
        for batch in arrays:
            trainer.params, trainer.opt_state, _ = trainer.run.train_step(
                trainer.params, trainer.opt_state, batch
            )
        jax.block_until_ready(trainer.params)
        step_s = time.perf_counter() - start

        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_one()
        jax.block_until_ready(trainer.params)
        both_s = time.perf_counter() - start
        # The peak beside it, now: on a CPU a matmul measured under the same load as the steps.
        if jax.devices()[0].platform == "cpu":
            peak = flops.cpu_matmul_flops.__wrapped__()
            source = "float32 matmul, measured now"
        else:
            peak, source = flops.peak_flops(config.model.dtype)
        trainer.close()

    n = args.steps * tokens
    print(
        f"quickstart train step: {trainer.run.num_params:,} parameters, batch "
        f"{config.data.batch_size} x {config.data.seq_len} tokens, {args.steps} steps"
    )
    print(
        f"  train step alone     {n / step_s:12,.0f} tok/s   {step_s / args.steps * 1e3:8.1f} ms/step"
    )
    print(
        f"  pipeline alone       {n / data_s:12,.0f} tok/s   {data_s / args.steps * 1e3:8.1f} ms/batch"
    )
    print(
        f"  trainer (both)       {n / both_s:12,.0f} tok/s   {both_s / args.steps * 1e3:8.1f} ms/step"
    )
    print(f"  pipeline / train step consumption: {step_s / data_s:.1f}x")
    rate = trainer.mfu.flops_per_token * n / step_s
    print(
        f"  train step {rate / 1e9:,.2f} GFLOP/s ({trainer.mfu.flops_per_token:,.0f} FLOPs/token) | "
        + (f"peak {peak / 1e9:,.2f} GFLOP/s ({source}) | MFU {rate / peak:.1%}" if peak else source)
    )


if __name__ == "__main__":
    main()
