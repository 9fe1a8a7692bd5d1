"""Plain NumPy loops: the ground truth every implementation is tested against."""

from __future__ import annotations

import numpy as np


def numpy_scan(a: np.ndarray, b: np.ndarray, h0: np.ndarray, reverse: bool) -> np.ndarray:
    """h_t = a_t * h_{t-1} + b_t over axis 1, one step at a time, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h = np.asarray(h0, np.float64).copy()
    out = np.empty_like(b)
    steps = range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1])
    for t in steps:
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


def finite_difference_grads(
    a: np.ndarray, b: np.ndarray, h0: np.ndarray, w: np.ndarray, reverse: bool, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central differences of sum(w * numpy_scan(a, b, h0)) with respect to a, b and h0."""
    args = [np.asarray(x, np.float64).copy() for x in (a, b, h0)]

    def loss() -> float:
        return float(np.sum(w * numpy_scan(*args, reverse)))

    grads = []
    for x in args:
        g = np.zeros_like(x)
        for index in np.ndindex(x.shape):
            keep = x[index]
            x[index] = keep + eps
            up = loss()
            x[index] = keep - eps
            down = loss()
            x[index] = keep
            g[index] = (up - down) / (2 * eps)
        grads.append(g)
    return grads[0], grads[1], grads[2]
