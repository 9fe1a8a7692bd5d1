"""Throughput and MFU of the train step, and how much of it the data pipeline costs.

    python benchmarks/train.py [--preset gated-125m ...] [--steps 30] [--set key=value ...]

For each preset (configs/models/<preset>.yaml; none: the quickstart's model) prints tokens/s of
the jitted train step alone (batches made beforehand), of the in-process pipeline alone, and of
the two together as the trainer runs them (their ratio to the step alone is the pipeline
ratio); then the step's model FLOP rate (train/flops.py) as MFU against two peaks, side by
side: the spec sheet's (on a CPU: a float32 matmul measured once) and a matmul in the model's
dtype measured in the same run (bfloat16 on a GPU; float32 on a CPU).

Sizes: on a GPU the issue's setting, batch 16 x 2048 tokens, bfloat16, vocabulary 32,768; on a
CPU a trimmed model (width 96, 3 blocks, batch 4 x 256). ``--set`` overrides either.

``measure(preset, steps)`` returns the same figures as a ``TrainBench`` (benchmarks/gpu.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax

if TYPE_CHECKING:
    from birdie_ssm.train.trainer import Trainer

PRESETS_DIR = Path(__file__).resolve().parents[1] / "configs" / "models"
PRESETS = ("gated-125m", "hawk-125m", "griffin-125m", "transformer-125m")
GPU_SIZES = [
    "data.batch_size=16",
    "data.seq_len=2048",
    "model.dtype=bfloat16",
    "model.vocab_size=32768",
]
# Width 96 splits into 12 heads with an even head size (RoPE); 3 blocks hold one RRA period.
CPU_SIZES = [
    "model.width=96",
    "model.depth=3",
    "data.batch_size=4",
    "data.seq_len=256",
    "model.vocab_size=512",
]


@dataclass(frozen=True)
class TrainBench:
    """One preset's figures: rates in tokens/s, MFU as fractions (None: peak unknown)."""

    name: str
    params: int
    batch: int
    seq_len: int
    dtype: str
    steps: int
    step_tps: float  # the jitted train step alone
    pipeline_tps: float  # the in-process (or worker) pipeline alone
    trainer_tps: float  # both, as Trainer.train_one runs them
    flops_per_token: float
    spec_peak: float | None  # FLOP/s, spec sheet (CPU: measured float32 matmul)
    spec_source: str
    matmul_peak: float  # FLOP/s of a matmul in the model's dtype, measured in this run
    matmul_dtype: str

    @property
    def pipeline_ratio(self) -> float:
        """Trainer (pipeline and step) tokens/s over the step alone's: 1.0 = never starved."""
        return self.trainer_tps / self.step_tps

    @property
    def model_flops(self) -> float:
        """Model FLOP/s of the step alone."""
        return self.flops_per_token * self.step_tps

    @property
    def mfu_spec(self) -> float | None:
        return self.model_flops / self.spec_peak if self.spec_peak else None

    @property
    def mfu_matmul(self) -> float:
        return self.model_flops / self.matmul_peak


def default_sizes() -> list[str]:
    """The ``--set`` overrides a preset runs at on this backend (before the user's own)."""
    return GPU_SIZES if jax.default_backend() == "gpu" else CPU_SIZES


def known_presets() -> str:
    """The configs/models preset names, for error messages."""
    return ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))


@contextmanager
def preset_trainer(preset: str | None, overrides: list[str] | None = None) -> Iterator[Trainer]:
    """A Trainer of ``preset`` (None: the quickstart) at this backend's sizes plus ``overrides``,
    in a temporary run directory, closed on exit."""
    from birdie_ssm.config import load_config
    from birdie_ssm.train.trainer import Trainer

    path = None if preset is None else PRESETS_DIR / f"{preset}.yaml"
    if path is not None and not path.is_file():
        raise ValueError(f"unknown preset '{preset}' (known: {known_presets()})")
    sizes = default_sizes() if preset is not None else []
    config = load_config(path, ["train.progress=false", *sizes, *(overrides or [])])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir)
        try:
            yield trainer
        finally:
            trainer.close()


def draw_batches(trainer: Trainer, steps: int) -> list[Any]:
    """``steps`` batches from the trainer's pipeline, as the train step takes them."""
    return [trainer.birdie.next_batch() for _ in range(steps)]


def on_devices(trainer: Trainer, batches: list[Any]) -> list[Any]:
    """Drawn batches' model inputs sharded onto the devices, waited for."""
    from birdie_ssm.train.sharding import global_batch

    sharding = trainer.run.batch_sharding
    return jax.block_until_ready([global_batch(b.model_inputs(), sharding) for b in batches])


def run_steps(step: Any, params: Any, opt_state: Any, batches: list[Any]) -> tuple[Any, Any]:
    """The train step alone (jitted or compiled) over ``batches``, waited for; new state."""
    for batch in batches:
        params, opt_state, _ = step(params, opt_state, batch)
    return jax.block_until_ready((params, opt_state))


def measure(preset: str | None, steps: int = 30, overrides: list[str] | None = None) -> TrainBench:
    """Time ``steps`` train steps of ``preset`` (a configs/models name; None: the quickstart)
    at this backend's sizes plus ``overrides``; return the figures."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    from birdie_ssm.train import flops

    with preset_trainer(preset, overrides) as trainer:
        config = trainer.config
        tokens = steps * config.data.batch_size * config.data.seq_len
        for _ in range(3):  # compile and warm up
            trainer.train_one()
        jax.block_until_ready(trainer.params)

        start = time.perf_counter()
        batches = draw_batches(trainer, steps)
        data_s = time.perf_counter() - start

        arrays = on_devices(trainer, batches)
        start = time.perf_counter()
        trainer.params, trainer.opt_state = run_steps(
            trainer.run.train_step, trainer.params, trainer.opt_state, arrays
        )
        step_s = time.perf_counter() - start

        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_one()
        jax.block_until_ready(trainer.params)
        both_s = time.perf_counter() - start
    # The peaks beside it, now, under the same load as the steps.
    on_gpu = jax.default_backend() == "gpu"
    matmul_dtype = config.model.dtype if on_gpu else "float32"
    matmul = flops.matmul_flops(matmul_dtype, 8192 if on_gpu else 512, 1.0 if on_gpu else 0.3)
    spec, source = flops.peak_flops(config.model.dtype)
    return TrainBench(
        name=preset or "quickstart",
        params=trainer.run.num_params,
        batch=config.data.batch_size,
        seq_len=config.data.seq_len,
        dtype=config.model.dtype,
        steps=steps,
        step_tps=tokens / step_s,
        pipeline_tps=tokens / data_s,
        trainer_tps=tokens / both_s,
        flops_per_token=trainer.mfu.flops_per_token,
        spec_peak=spec,
        spec_source=source,
        matmul_peak=matmul,
        matmul_dtype=matmul_dtype,
    )


def report(bench: TrainBench) -> str:
    """The figures of one preset as a few aligned lines."""

    def rate(tps: float) -> str:
        ms = bench.batch * bench.seq_len / tps * 1e3
        return f"{tps:12,.0f} tok/s {ms:9.1f} ms/step"

    spec = (
        f"{bench.mfu_spec:6.1%} of spec {bench.spec_peak / 1e12:,.2f} TFLOP/s"
        if bench.mfu_spec is not None
        else f"spec unknown ({bench.spec_source})"
    )
    return "\n".join(
        [
            f"{bench.name}: {bench.params:,} parameters, batch {bench.batch} x {bench.seq_len} "
            f"tokens, {bench.dtype}, {bench.steps} steps",
            f"  train step alone  {rate(bench.step_tps)}",
            f"  pipeline alone    {rate(bench.pipeline_tps)}",
            f"  trainer (both)    {rate(bench.trainer_tps)}   pipeline ratio "
            f"{bench.pipeline_ratio:.2f} of the step alone",
            f"  model {bench.model_flops / 1e12:,.3f} TFLOP/s ({bench.flops_per_token:,.0f} "
            f"FLOPs/token) | MFU {spec}, {bench.mfu_matmul:.2f} of a {bench.matmul_dtype} "
            f"matmul measured now ({bench.matmul_peak / 1e12:,.2f} TFLOP/s)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument(
        "--preset",
        action="append",
        default=None,
        metavar="NAME",
        help=f"configs/models preset, repeatable; 'all' = {', '.join(PRESETS)} "
        "(default: the quickstart's model at its own sizes)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.steps < 1:
        sys.exit(
            f"error: --steps must be at least 1 (timed steps per measurement), got {args.steps}"
        )
    presets: list[str | None] = [None]
    if args.preset:
        presets = [p for name in args.preset for p in (PRESETS if name == "all" else [name])]
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s): {jax.devices()[0]}")
    for preset in presets:
        try:
            bench = measure(preset, args.steps, args.set)
        except ValueError as exc:
            sys.exit(f"error: {exc}")
        print(report(bench), flush=True)


if __name__ == "__main__":
    main()
