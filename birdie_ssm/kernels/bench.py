"""Side-by-side timings of the scan implementations against a fused elementwise pass.

The elementwise pass ``a * b + b`` moves the same bytes as a scan (reads a, b; writes h), so its
time is the memory limit; every figure is printed as a ratio to it, measured in one process with
the candidates interleaved so that machine load affects them alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from birdie_ssm.kernels import auto_impl, linear_scan

H200_PEAK_BYTES_PER_S = 4.8e12
GPU_SHAPE = (8, 4096, 2560)


def _lax_associative(a: jax.Array, b: jax.Array) -> jax.Array:
    """Plain lax.associative_scan, differentiated by autodiff: the baseline to beat."""

    def combine(x, y):
        return x[0] * y[0], y[0] * x[1] + y[1]

    return jax.lax.associative_scan(combine, (a, b), axis=1)[1]


def _scan(impl: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    return lambda a, b: linear_scan(a, b, impl=impl)


def _elementwise(a: jax.Array, b: jax.Array) -> jax.Array:
    return a * b + b


def _value_and_grads(f: Callable) -> Callable:
    """Forward output plus (da, db) for the cotangent w: one training step's worth of work."""

    def run(a, b, w):
        h, pullback = jax.vjp(f, a, b)
        return h, pullback(w)

    return run


def _time_side_by_side(
    fns: dict[str, Callable], args: Sequence, repeats: int, calls: int = 1
) -> dict[str, float]:
    """Best wall time in seconds per call, running the candidates in turn each round.

    ``calls`` back-to-back calls per round (then one wait) hide the dispatch cost, which on a
    GPU is a sizeable part of a sub-millisecond kernel.
    """
    jitted = {name: jax.jit(f) for name, f in fns.items()}
    for f in jitted.values():
        jax.block_until_ready(f(*args))
    best = dict.fromkeys(jitted, float("inf"))
    for _ in range(repeats):
        for name, f in jitted.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = f(*args)
            jax.block_until_ready(out)
            best[name] = min(best[name], (time.perf_counter() - start) / calls)
    return best


def _inputs(shape: tuple[int, int, int], dtype: jnp.dtype) -> tuple[jax.Array, ...]:
    ka, kb, kw = jax.random.split(jax.random.PRNGKey(0), 3)
    a = jax.random.uniform(ka, shape, jnp.float32, 0.5, 1.0).astype(dtype)
    b = jax.random.normal(kb, shape, jnp.float32).astype(dtype)
    w = jax.random.normal(kw, shape, jnp.float32).astype(dtype)
    return a, b, w


def _report(title: str, times: dict[str, float], base: str) -> None:
    print(f"\n{title}")
    for name, t in times.items():
        print(f"  {name:<34} {t * 1e3:9.2f} ms  {t / times[base]:6.2f}x {base}")


def bench_cpu_shape(shape: tuple[int, int, int], repeats: int) -> dict[str, float]:
    """Forward and forward+backward ratios at ``shape`` float32; returns the headline ratios."""
    a, b, w = _inputs(shape, jnp.float32)
    impls = ["auto", "sequential", "reference", "associative"]
    forward = {"elementwise a*b+b": _elementwise}
    forward |= {f"linear_scan impl={name}": _scan(name) for name in impls}
    forward["lax.associative_scan"] = _lax_associative
    fwd = _time_side_by_side(forward, (a, b), repeats)
    base = "elementwise a*b+b"
    _report(f"forward, {list(shape)} float32", fwd, base)
    both = {name: _value_and_grads(f) for name, f in forward.items()}
    fwd_bwd = _time_side_by_side(both, (a, b, w), repeats)
    _report(f"forward+backward (value and da, db), {list(shape)} float32", fwd_bwd, base)
    auto = "linear_scan impl=auto"
    return {
        "auto fwd / elementwise": fwd[auto] / fwd[base],
        "auto fwd+bwd / elementwise fwd+bwd": fwd_bwd[auto] / fwd_bwd[base],
        "lax.associative_scan fwd / auto fwd": fwd["lax.associative_scan"] / fwd[auto],
        "lax.associative_scan fwd+bwd / auto fwd+bwd": (
            fwd_bwd["lax.associative_scan"] / fwd_bwd[auto]
        ),
    }


def _gpu_report(title: str, times: dict[str, float], moved: int) -> None:
    """Milliseconds, ratio to the elementwise pass, and effective GB/s (``moved`` bytes / time)."""
    print(f"\n{title}")
    for name, t in times.items():
        print(
            f"  {name:<34} {t * 1e3:9.3f} ms  {t / times[ELEMENTWISE]:6.2f}x elementwise  "
            f"{moved / t / 1e9:7.0f} GB/s"
        )


ELEMENTWISE = "elementwise a*b+b"


def bench_gpu(repeats: int) -> dict[str, float]:
    """At GPU_SHAPE bfloat16: our Pallas kernel and the associative scans against ``a*b+b``.

    Forward, then forward+backward (value and da, db), each as a ratio to the elementwise pass
    doing the same (its own forward, or forward and backward) in the same run.
    """
    a, b, w = _inputs(GPU_SHAPE, jnp.bfloat16)
    forward = {
        ELEMENTWISE: _elementwise,
        "linear_scan impl=pallas": _scan("pallas"),
        "linear_scan impl=associative": _scan("associative"),
        "lax.associative_scan": _lax_associative,
    }
    array_bytes = a.size * a.dtype.itemsize
    fwd = _time_side_by_side(forward, (a, b), repeats, calls=10)
    # GB/s counts the least any implementation must move: forward reads a, b and writes h;
    # forward+backward also reads the cotangent and writes da and db.
    _gpu_report(f"GPU forward, {list(GPU_SHAPE)} bfloat16", fwd, 3 * array_bytes)
    both = {name: _value_and_grads(f) for name, f in forward.items()}
    fwd_bwd = _time_side_by_side(both, (a, b, w), repeats, calls=10)
    _gpu_report(f"GPU forward+backward, {list(GPU_SHAPE)} bfloat16", fwd_bwd, 6 * array_bytes)
    ours = "linear_scan impl=pallas"
    return {
        "pallas fwd / elementwise (target <= 1.2)": fwd[ours] / fwd[ELEMENTWISE],
        "pallas fwd+bwd / elementwise (target <= 1.8)": fwd_bwd[ours] / fwd_bwd[ELEMENTWISE],
        "associative fwd / elementwise": fwd["linear_scan impl=associative"] / fwd[ELEMENTWISE],
        "associative fwd+bwd / elementwise": (
            fwd_bwd["linear_scan impl=associative"] / fwd_bwd[ELEMENTWISE]
        ),
        "pallas fwd bandwidth / H200 peak": 3 * array_bytes / fwd[ours] / H200_PEAK_BYTES_PER_S,
    }


# (block_t, block_d, num_warps, prefetch) tried by --sweep; the first is pallas.py's default.
SWEEP = (
    (32, 64, 4, False),
    (32, 64, 4, True),
    (32, 64, 2, False),
    (32, 64, 1, False),
    (16, 64, 4, True),
    (64, 64, 4, False),
    (32, 32, 2, False),
    (32, 32, 2, True),
)


def sweep_gpu(repeats: int) -> None:
    """Our kernel at GPU_SHAPE bfloat16 per setting in SWEEP, against a*b+b.

    Prints forward and forward+backward ratios to the elementwise pass, so that one run on a GPU
    shows which block sizes to make the default; a setting that fails to compile says why.
    """
    from birdie_ssm.kernels import pallas

    a, b, w = _inputs(GPU_SHAPE, jnp.bfloat16)
    h0 = jnp.zeros((GPU_SHAPE[0], GPU_SHAPE[2]), jnp.float32)
    forward = {ELEMENTWISE: _elementwise}
    for block_t, block_d, warps, prefetch in SWEEP:
        scan = pallas.make_scan(
            block_t=block_t, block_d=block_d, num_warps=warps, prefetch=prefetch, interpret=False
        )
        name = f"t={block_t} d={block_d} warps={warps}" + (" prefetch" if prefetch else "")
        forward[name] = lambda a, b, scan=scan: scan(a, b, h0, False)
    both = {name: _value_and_grads(f) for name, f in forward.items()}
    for name in list(forward):
        try:  # compile both once here, so that one failing setting leaves the others' figures
            jax.block_until_ready(jax.jit(both[name])(a, b, w))
        except Exception as error:  # a setting Triton cannot compile is a finding, not a crash
            print(f"  {name}: failed ({type(error).__name__}: {str(error).splitlines()[0][:150]})")
            del forward[name], both[name]
    fwd = _time_side_by_side(forward, (a, b), repeats, calls=10)
    fwd_bwd = _time_side_by_side(both, (a, b, w), repeats, calls=10)
    print(f"\nsweep of our kernel's settings, {list(GPU_SHAPE)} bfloat16 (ratio to {ELEMENTWISE})")
    print(f"  {'setting':<34} {'forward':>9} {'fwd+bwd':>9}")
    for name in forward:
        print(
            f"  {name:<34} {fwd[name] / fwd[ELEMENTWISE]:8.2f}x "
            f"{fwd_bwd[name] / fwd_bwd[ELEMENTWISE]:8.2f}x"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Print the scan benchmark; ``--quick`` uses a small shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shape [2, 512, 128]")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per candidate")
    parser.add_argument(
        "--gpu-only", action="store_true", help="on a GPU, only the bfloat16 table at GPU_SHAPE"
    )
    parser.add_argument(
        "--sweep", action="store_true", help="on a GPU, also time the kernel's block settings"
    )
    args = parser.parse_args(argv)
    shape = (2, 512, 128) if args.quick else (8, 4096, 512)
    repeats = args.repeats or (5 if args.quick else 7)
    backend = jax.default_backend()
    print(f"backend {backend}, devices {jax.devices()}, auto -> {auto_impl()!r}")
    headline = {}
    if not (args.gpu_only and backend == "gpu"):
        headline |= bench_cpu_shape(shape, repeats)
    if backend == "gpu":
        headline |= bench_gpu(repeats)
        if args.sweep:
            sweep_gpu(repeats)
    else:
        print(f"\nno GPU: the {list(GPU_SHAPE)} bfloat16 table (Pallas kernel) is not measured")
    print("\nheadline ratios")
    for name, value in headline.items():
        print(f"  {name:<46} {value:6.2f}")
