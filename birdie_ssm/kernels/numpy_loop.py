"""The linear recurrence and its cotangents as plain float64 NumPy loops: the ground truth.

The tests, the GPU probe of ``impl="auto"`` and ``birdie-ssm bench gpu`` check kernels against
these loops, one step at a time, with no JAX in between.
"""

from __future__ import annotations

import numpy as np


def _steps(length: int, reverse: bool) -> range:
    return range(length - 1, -1, -1) if reverse else range(length)


def numpy_scan(a: np.ndarray, b: np.ndarray, h0: np.ndarray, reverse: bool) -> np.ndarray:
    """h_t = a_t * h_{t-1} + b_t over axis 1, one step at a time, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h = np.asarray(h0, np.float64).copy()
    out = np.empty_like(b)
    for t in _steps(a.shape[1], reverse):
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


def numpy_scan_vjp(
    a: np.ndarray, b: np.ndarray, h0: np.ndarray, dh: np.ndarray, reverse: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact cotangents (da, db, dh0) of ``numpy_scan`` for the output cotangent ``dh``, in float64.

    Walks the steps backwards: g_t = dh_t + a_{t+1} * g_{t+1}, db = g, da_t = g_t * h_{t-1}.
    """
    a, dh = np.asarray(a, np.float64), np.asarray(dh, np.float64)
    h0 = np.asarray(h0, np.float64)
    h = numpy_scan(a, b, h0, reverse)
    da, db = np.empty_like(a), np.empty_like(a)
    flow = np.zeros_like(h0)  # a_{t+1} * g_{t+1}, the cotangent arriving from the later step
    steps = list(_steps(a.shape[1], reverse))
    for i in range(len(steps) - 1, -1, -1):
        t = steps[i]
        g = dh[:, t] + flow
        h_prev = h[:, steps[i - 1]] if i > 0 else h0
        db[:, t] = g
        da[:, t] = g * h_prev
        flow = a[:, t] * g
    return da, db, flow


def scan_case(
    rng: np.random.Generator, shape: tuple[int, int, int], dtype, a_high: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random (a, b, dh, h0) for a scan check, a, b and dh rounded to ``dtype`` first (returned as
    float64), so the loop sees exactly what a kernel fed ``dtype`` sees."""
    import jax.numpy as jnp  # numpy-only callers never pay for JAX

    a, b, dh = (
        np.asarray(jnp.asarray(x, dtype), np.float64)
        for x in (rng.uniform(0.5, a_high, shape), rng.normal(size=shape), rng.normal(size=shape))
    )
    h0 = rng.normal(size=(shape[0], shape[2])).astype(np.float32)
    return a, b, dh, h0
