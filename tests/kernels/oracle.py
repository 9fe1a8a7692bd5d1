"""Plain NumPy loops: the ground truth every implementation is tested against.

The float64 loops live in the package (the GPU probe and ``bench gpu`` use them too); the
finite differences, which check those loops' cotangents in turn, are the tests' own.
"""

from __future__ import annotations

import numpy as np

from birdie_ssm.kernels.numpy_loop import numpy_scan, numpy_scan_vjp

__all__ = ["finite_difference_grads", "numpy_scan", "numpy_scan_vjp"]


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
