"""Everything a GPU run should show, in one command of at most five minutes on one H200.

    python benchmarks/gpu.py        (same as ``birdie-ssm bench gpu``)

(a) the compiled scan kernel against the float64 NumPy loop; (b) the scan table at
[8, 4096, 2560] bfloat16 (benchmarks/scan.py's) and a sweep of the kernel's settings; (c) train
tokens/s and MFU of the four 125M presets (``benchmarks/train.py --preset NAME``: on a GPU batch
16 x 2048, bfloat16, vocabulary 32,768); (d) the data-pipeline ratio, trainer with the pipeline
/ step alone, read from those runs' tokens/s lines.
Each part runs in its own process under its own time limit, so one that hangs or crashes costs
only its own lines. Needs a GPU: elsewhere it says so in one line and exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("gated-125m", "hawk-125m", "griffin-125m", "transformer-125m")
CHECK_SHAPE = (4, 1001, 300)  # odd length, a width that is not a multiple of 64
# The parent process never starts JAX's GPU client, so each part may take the memory it needs.
NO_PREALLOCATION = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def kernel_check() -> bool:
    """(a) Compiled Pallas and associative scans, value and gradients, against the float64 loop."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from birdie_ssm.kernels import linear_scan
    from birdie_ssm.kernels.numpy_loop import numpy_scan, numpy_scan_vjp, scan_case

    rng = np.random.default_rng(0)
    print(f"shape {list(CHECK_SHAPE)}, h0 given; error = max |ours - loop| / (1 + max |loop|)")
    print(f"  {'impl':<12} {'dtype':<9} {'reverse':<8} {'h':>9} {'da':>9} {'db':>9} {'dh0':>9}")
    ok = True
    for impl in ("pallas", "associative"):
        for dtype, tol in ((jnp.float32, 1e-4), (jnp.bfloat16, 2e-2)):
            for reverse in (False, True):
                a, b, dh, h0 = scan_case(rng, CHECK_SHAPE, dtype, a_high=0.999)

                @jax.jit
                def run(a, b, h0, dh, impl=impl, reverse=reverse):
                    def scan(a, b, h0):
                        return linear_scan(a, b, h0=h0, reverse=reverse, impl=impl)

                    h, pullback = jax.vjp(scan, a, b, h0)
                    return h, *pullback(dh)

                got = run(jnp.asarray(a, dtype), jnp.asarray(b, dtype), h0, jnp.asarray(dh, dtype))
                want = (numpy_scan(a, b, h0, reverse), *numpy_scan_vjp(a, b, h0, dh, reverse))
                errors = [
                    float(np.max(np.abs(np.asarray(x, np.float64) - y)) / (1 + np.max(np.abs(y))))
                    for x, y in zip(got, want, strict=True)
                ]
                # Only ours must pass; the associative scan is printed for comparison.
                passed = max(errors) <= tol
                ok &= passed or impl != "pallas"
                verdict = "ok" if passed else f"MISSES (tolerance {tol:g})"
                print(
                    f"  {impl:<12} {jnp.dtype(dtype).name:<9} {reverse!s:<8} "
                    + " ".join(f"{e:9.2e}" for e in errors)
                    + f"  {verdict}"
                )
    return ok


def scan_table() -> None:
    """(b) The [8, 4096, 2560] bfloat16 scan table, and the sweep of our kernel's settings."""
    from birdie_ssm.kernels.bench import main

    main(["--gpu-only", "--sweep", "--repeats", "5"])


def train_command(preset: str, steps: int) -> list[str]:
    """benchmarks/train.py's command line for one preset (it picks the GPU sizes itself)."""
    script = ROOT / "benchmarks" / "train.py"
    return [sys.executable, str(script), "--preset", preset, "--steps", str(steps)]


def _run(title: str, command: list[str], seconds: float) -> str | None:
    """Run one part in its own process under a time limit; print and return its output."""
    print(f"\n== {title} (limit {seconds:.0f} s)", flush=True)
    start = time.perf_counter()
    env = {**os.environ, **NO_PREALLOCATION}
    # A session of its own, so that a timeout ends the part's data workers with it.
    part = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = part.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(part.pid, signal.SIGKILL)
        stdout, _ = part.communicate()
        print(stdout, end="")
        print(f"-- timed out after {seconds:.0f} s")
        return None
    print(stdout, end="")
    wall = time.perf_counter() - start
    if part.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        print(f"-- failed (exit {part.returncode}, {wall:.0f} s):\n{tail}")
        return None
    print(f"-- {wall:.0f} s")
    return stdout


def pipeline_ratio(output: str) -> float | None:
    """Trainer with the pipeline / step alone, from benchmarks/train.py's tokens/s lines."""
    rates = {}
    for label in ("train step alone", "trainer (both)"):
        match = re.search(re.escape(label) + r"\s+([\d,]+) tok/s", output)
        if match is None:
            return None
        rates[label] = float(match.group(1).replace(",", ""))
    return rates["trainer (both)"] / rates["train step alone"]


def model_line(output: str) -> str | None:
    """benchmarks/train.py's line with the model FLOP rate and MFU, without its label."""
    match = re.search(r"^\s*model (.*MFU.*)$", output, re.MULTILINE)
    return match.group(1).strip() if match else None


def has_gpu() -> bool:
    """Whether JAX finds a GPU, asked in a child process (the parent keeps off the device)."""
    code = "import jax; print(jax.default_backend())"
    env = {**os.environ, **NO_PREALLOCATION}
    try:
        found = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
        )
    except subprocess.TimeoutExpired:
        return False
    return found.returncode == 0 and found.stdout.strip().endswith("gpu")


def main(argv: list[str] | None = None) -> None:
    """Run the four parts, each under its limit, and print a summary of the headline figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("check", "scan"), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=10, help="timed train steps per preset")
    parser.add_argument("--train-seconds", type=float, default=40, help="limit per preset")
    args = parser.parse_args(argv)
    if args.part == "check":
        sys.exit(0 if kernel_check() else 1)
    if args.part == "scan":
        scan_table()
        return
    if not has_gpu():
        sys.exit("birdie-ssm bench gpu needs a GPU, and JAX finds none on this machine")

    me = [sys.executable, str(Path(__file__).resolve())]
    checked = _run(
        "(a) scan kernel against the float64 loop, compiled", [*me, "--part", "check"], 40
    )
    table = _run("(b) scan table", [*me, "--part", "scan"], 85)
    trains = {}
    for preset in PRESETS:
        command = train_command(preset, args.steps)
        trains[preset] = _run(f"(c) train step, {preset}", command, args.train_seconds)

    print("\n== summary")
    print(f"  (a) kernel check: {'passed' if checked is not None else 'FAILED or timed out'}")
    if table is not None:
        for line in table.split("headline ratios", 1)[-1].strip().splitlines():
            print(f"  (b) {line.strip()}")
    for preset, output in trains.items():
        print(f"  (c) {preset:<17} {model_line(output or '') or 'no model FLOP line (see above)'}")
    for preset, output in trains.items():
        ratio = pipeline_ratio(output or "")
        shown = f"{ratio:.2f}" if ratio is not None else "not measured"
        print(f"  (d) {preset:<17} trainer with pipeline / step alone: {shown} (target >= 0.95)")


if __name__ == "__main__":
    main()
