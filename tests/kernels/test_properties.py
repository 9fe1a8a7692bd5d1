"""Property tests: every implementation against a NumPy loop and against ``reference``."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.kernels import linear_scan
from tests.kernels.oracle import finite_difference_grads, numpy_scan

# "auto" resolves to one of these; tests/kernels/test_api.py checks which.
FAST_IMPLS = ["reference", "associative", "sequential"]
ALL_IMPLS = [*FAST_IMPLS, "pallas"]
TOLERANCE = {jnp.float32: 2e-5, jnp.bfloat16: 2e-2}


@partial(jax.jit, static_argnames=("impl", "reverse", "use_h0"))
def _scan(a, b, h0, *, impl, reverse, use_h0):
    return linear_scan(a, b, h0=h0 if use_h0 else None, reverse=reverse, impl=impl)


@partial(jax.jit, static_argnames=("impl", "reverse"))
def _grads(a, b, h0, w, *, impl, reverse):
    def loss(a, b, h0):
        h = linear_scan(a, b, h0=h0, reverse=reverse, impl=impl)
        return jnp.sum(w * h.astype(jnp.float32))

    return jax.grad(loss, argnums=(0, 1, 2))(a, b, h0)


@st.composite
def scan_inputs(draw, max_length: int = 13, max_dim: int = 5):
    """Decays in [-1, 1] with some exact zeros (sequence boundaries), values, h0 and a cotangent."""
    batch = draw(st.integers(1, 2))
    length = draw(st.sampled_from([1, 2, 3, 5, 8, max_length]))
    dim = draw(st.integers(1, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (batch, length, dim)
    a = rng.uniform(-1.0, 1.0, shape)
    a[rng.random(shape) < draw(st.sampled_from([0.0, 0.2]))] = 0.0
    b = rng.normal(size=shape)
    h0 = rng.normal(size=(batch, dim))
    w = rng.normal(size=shape)
    return a, b, h0, w


def _close(actual, expected, dtype) -> None:
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol, atol=tol)


def _check_values(impl, data, dtype, reverse, use_h0) -> None:
    a, b, h0, _ = data
    a_j, b_j = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    h0_j = jnp.asarray(h0, jnp.float32)
    out = _scan(a_j, b_j, h0_j, impl=impl, reverse=reverse, use_h0=use_h0)
    assert out.dtype == dtype and out.shape == b.shape
    # The oracle sees the inputs as rounded to ``dtype``, so only the scan's own error remains.
    start = h0 if use_h0 else np.zeros_like(h0)
    expected = numpy_scan(np.asarray(a_j, np.float64), np.asarray(b_j, np.float64), start, reverse)
    _close(out, expected, dtype)
    oracle = _scan(a_j, b_j, h0_j, impl="reference", reverse=reverse, use_h0=use_h0)
    _close(out, np.asarray(oracle, np.float64), dtype)


@pytest.mark.parametrize("impl", FAST_IMPLS)
@settings(max_examples=8, deadline=None)
@given(
    data=scan_inputs(),
    dtype=st.sampled_from([jnp.float32, jnp.bfloat16]),
    reverse=st.booleans(),
    use_h0=st.booleans(),
)
def test_values_match_numpy_loop(impl, data, dtype, reverse, use_h0):
    _check_values(impl, data, dtype, reverse, use_h0)


@settings(max_examples=4, deadline=None)
@given(
    data=scan_inputs(max_length=7, max_dim=3),
    dtype=st.sampled_from([jnp.float32, jnp.bfloat16]),
    reverse=st.booleans(),
)
def test_pallas_values_match_numpy_loop(data, dtype, reverse):
    _check_values("pallas", data, dtype, reverse, use_h0=True)


def _check_grads(impl, data, reverse) -> None:
    a, b, h0, w = data
    args = [jnp.asarray(x, jnp.float32) for x in (a, b, h0, w)]
    grads = _grads(*args, impl=impl, reverse=reverse)
    expected = finite_difference_grads(a, b, h0, w, reverse)
    reference = _grads(*args, impl="reference", reverse=reverse)
    for got, fd, ref in zip(grads, expected, reference, strict=True):
        np.testing.assert_allclose(np.asarray(got), fd, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", FAST_IMPLS)
@settings(max_examples=6, deadline=None)
@given(data=scan_inputs(max_length=6, max_dim=2), reverse=st.booleans())
def test_grads_match_finite_differences(impl, data, reverse):
    _check_grads(impl, data, reverse)


@settings(max_examples=3, deadline=None)
@given(data=scan_inputs(max_length=5, max_dim=2), reverse=st.booleans())
def test_pallas_grads_match_finite_differences(data, reverse):
    _check_grads("pallas", data, reverse)


@pytest.mark.parametrize("impl", ALL_IMPLS)
def test_bfloat16_grads_keep_dtypes(impl):
    a = jnp.full((1, 4, 3), 0.5, jnp.bfloat16)
    b = jnp.ones((1, 4, 3), jnp.bfloat16)
    h0 = jnp.ones((1, 3), jnp.float32)
    w = jnp.ones((1, 4, 3), jnp.float32)
    da, db, dh0 = _grads(a, b, h0, w, impl=impl, reverse=False)
    assert (da.dtype, db.dtype, dh0.dtype) == (jnp.bfloat16, jnp.bfloat16, jnp.float32)
    expected = _grads(
        *(x.astype(jnp.float32) for x in (a, b)), h0, w, impl="reference", reverse=False
    )
    for got, ref in zip((da, db, dh0), expected, strict=True):
        np.testing.assert_allclose(np.asarray(got, np.float32), ref, rtol=2e-2)
