"""Compile time of the train step against depth: blocks unrolled in a Python loop vs scanned.

    python benchmarks/compile.py [--preset gated-125m] [--depths 3,6,12,24] [--steps 5]
                                 [--set key=value ...]

For each depth prints, side by side, the seconds to lower and compile the jitted train step with
``model.scan_layers`` off (one traced copy per block) and on (one period traced, ``lax.scan``
over depth), their ratio, and the steady step time of each (what the scan costs or saves at run
time). Sizes are benchmarks/train.py's for this backend (on a CPU a trimmed width and batch: the
compile time is the point, and it depends on depth, not width).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import (  # noqa: E402
    PRESETS_DIR,
    default_sizes,
    draw_batches,
    known_presets,
    on_devices,
    preset_trainer,
    run_steps,
)


def compile_and_step(preset: str, depth: int, scan: bool, steps: int, overrides: list[str]):
    """(compile seconds, seconds per step) of ``preset`` at ``depth`` with scan_layers ``scan``."""
    settings = [*overrides, f"model.depth={depth}", f"model.scan_layers={str(scan).lower()}"]
    with preset_trainer(preset, settings) as trainer:
        (batch,) = on_devices(trainer, draw_batches(trainer, 1))
        start = time.perf_counter()
        compiled = trainer.run.train_step.lower(trainer.params, trainer.opt_state, batch).compile()
        compile_s = time.perf_counter() - start
        state = run_steps(compiled, trainer.params, trainer.opt_state, [batch])
        start = time.perf_counter()
        run_steps(compiled, *state, [batch] * steps)
        return compile_s, (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gated-125m")
    parser.add_argument("--depths", default="3,6,12,24")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    try:
        depths = [int(d) for d in args.depths.split(",")]
    except ValueError:
        parser.error("--depths is a comma list of integers, e.g. 3,6,12,24")
    if not (PRESETS_DIR / f"{args.preset}.yaml").is_file() or args.steps < 1 or min(depths) < 1:
        parser.error(f"--preset is one of {known_presets()}; --steps and every depth must be >= 1")
    sizes = [s for s in default_sizes() + args.overrides if not s.startswith("model.depth=")]
    print(
        f"{args.preset} on {jax.default_backend()} ({', '.join(sizes)}): train step compile "
        "seconds and ms per step, blocks looped vs scanned"
    )
    print(
        f"{'depth':>5s} {'compile loop':>13s} {'compile scan':>13s} {'scan/loop':>10s} "
        f"{'step loop':>10s} {'step scan':>10s} {'scan/loop':>10s}"
    )
    for depth in depths:
        loop_c, loop_s = compile_and_step(args.preset, depth, False, args.steps, args.overrides)
        scan_c, scan_s = compile_and_step(args.preset, depth, True, args.steps, args.overrides)
        print(
            f"{depth:5d} {loop_c:12.1f}s {scan_c:12.1f}s {scan_c / loop_c:9.2f}x "
            f"{loop_s * 1e3:8.1f}ms {scan_s * 1e3:8.1f}ms {scan_s / loop_s:9.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
