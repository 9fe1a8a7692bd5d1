"""The Pallas kernels: blocks, padding, dtypes, the Triton lowering, the probe, and (on a GPU) the
compiled kernels, all against the float64 NumPy loop."""

from __future__ import annotations

import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from birdie_ssm.kernels import auto_impl, dispatch, linear_scan, pallas
from tests.helpers import TRITON_CALL, target_gpu
from tests.kernels.oracle import finite_difference_grads, numpy_scan, numpy_scan_vjp

ON_GPU = jax.default_backend() == "gpu"
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="needs a GPU")
TOLERANCE = {jnp.float32: 1e-4, jnp.bfloat16: 2e-2}


def _inputs(shape, dtype, seed=0):
    """a in [0.5, 0.95], b, dh rounded to ``dtype`` (as float64 for the loop), h0 float32."""
    rng = np.random.default_rng(seed)
    a, b, dh = (
        np.asarray(jnp.asarray(x, dtype), np.float64)
        for x in (rng.uniform(0.5, 0.95, shape), rng.normal(size=shape), rng.normal(size=shape))
    )
    h0 = rng.normal(size=(shape[0], shape[2])).astype(np.float32)
    return a, b, h0, dh


def _check_against_loop(scan, shape, dtype, reverse):
    """Value and (da, db, dh0) of ``scan`` against the float64 loop; dtypes kept."""
    a, b, h0, dh = _inputs(shape, dtype)
    args = (jnp.asarray(a, dtype), jnp.asarray(b, dtype), jnp.asarray(h0))

    @jax.jit
    def run(a, b, h0, dh):
        h, pullback = jax.vjp(lambda a, b, h0: scan(a, b, h0, reverse), a, b, h0)
        return h, *pullback(dh)

    got = run(*args, jnp.asarray(dh, dtype))
    assert [x.dtype for x in got] == [dtype, dtype, dtype, jnp.float32]
    want = (numpy_scan(a, b, h0, reverse), *numpy_scan_vjp(a, b, h0, dh, reverse))
    tol = TOLERANCE[dtype]
    for x, y in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float64), y, rtol=tol, atol=tol * 4)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_float64_vjp_loop_matches_finite_differences(reverse):
    # The loop every kernel's gradients are checked against (and the GPU probe) checked in turn.
    a, b, h0, dh = _inputs((2, 6, 3), jnp.float32)
    a[0, 2] = 0.0  # a sequence boundary
    for got, want in zip(
        numpy_scan_vjp(a, b, h0, dh, reverse),
        finite_difference_grads(a, b, h0, dh, reverse),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    ("dtype", "prefetch"), [(jnp.float32, False), (jnp.bfloat16, False), (jnp.float32, True)]
)
def test_blocks_carry_state_and_pad_in_length_and_width(dtype, prefetch, reverse):
    # 8-step tiles: 37 steps are 5 tiles, the last padded; 100 channels are two 64-channel blocks,
    # the second padded. Interpreted on CPU.
    scan = pallas.make_scan(block_t=8, prefetch=prefetch, interpret=not ON_GPU)
    _check_against_loop(scan, (2, 37, 100), dtype, reverse)


@pytest.mark.parametrize("blocks", [{"block_t": 24}, {"block_d": 0}])
def test_block_sizes_must_be_powers_of_two(blocks):
    with pytest.raises(ValueError, match="must be a power of two"):
        pallas.forward(jnp.ones((1, 4, 4)), jnp.ones((1, 4, 4)), jnp.zeros((1, 4)), False, **blocks)


def test_the_gpu_block_sizes_interpreted():
    # BLOCK_T x BLOCK_D as compiled on a GPU: 33 steps are two 32-step tiles (the second padded),
    # 65 channels two 64-channel blocks. A reverse scan, whose edges are the trickier ones (the
    # forward direction is checked at other block sizes above); interpreting 32 unrolled steps
    # is slow to compile, hence one direction.
    scan = pallas.make_scan(block_t=pallas.BLOCK_T, block_d=pallas.BLOCK_D, interpret=True)
    _check_against_loop(scan, (1, 33, 65), jnp.float32, reverse=True)


def test_probe_passes_the_kernel_and_rejects_one_that_ignores_h0(monkeypatch):
    pallas.probe("cpu", block_t=8)  # raises unless the kernel matches the float64 loop
    right = pallas._forward_kernel

    def ignores_h0(a_ref, b_ref, h0_ref, h_ref, **kwargs):
        right(a_ref, b_ref, _Zeros(h0_ref), h_ref, **kwargs)

    monkeypatch.setattr(pallas, "_forward_kernel", ignores_h0)
    with pytest.raises(RuntimeError, match="h misses the float64 loop"):
        pallas.probe("cpu", block_t=8)


class _Zeros:
    """A ref stand-in whose every read is zeros of the ref's shape."""

    def __init__(self, ref):
        self.ref = ref

    def __getitem__(self, index):
        return jnp.zeros_like(self.ref[index])


@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_kernels_lower_through_triton_without_a_gpu(reverse, prefetch):
    # Lowering runs the Pallas Triton front end (every op of both kernel bodies) on the host;
    # only compiling to the device needs a GPU. Checked this way on JAX 0.7.0, 0.10.2, 0.11.2.
    scan = pallas.make_scan(prefetch=prefetch, interpret=False)

    def loss(a, b, h0):
        return jnp.sum(scan(a, b, h0, reverse).astype(jnp.float32) ** 2)

    shape = jax.ShapeDtypeStruct((2, 100, 200), jnp.bfloat16)
    h0 = jax.ShapeDtypeStruct((2, 200), jnp.float32)
    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    with target_gpu():
        text = grad.trace(shape, shape, h0).lower(lowering_platforms=("cuda",)).as_text()
    # One forward and one backward kernel, each over (batch, 64-channel blocks).
    calls = re.findall(r"custom_call @(\S+)\(.*grid_x = (\d+) : i32, grid_y = (\d+)", text)
    assert calls == [(TRITON_CALL, "2", "4")] * 2, calls
    assert "mosaic" not in text
    # Named, so a profile (benchmarks/step_profile.py) tells the scan's time from the rest.
    assert re.findall(r'name = "(linear_scan_\w+)"', text) == [
        "linear_scan_forward",
        "linear_scan_backward",
    ]


# Compiled on the GPU (`pytest -m gpu`): a few seconds each.


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    ("dtype", "prefetch"), [(jnp.float32, False), (jnp.bfloat16, False), (jnp.bfloat16, True)]
)
def test_compiled_kernels_match_the_loop_on_gpu(dtype, prefetch, reverse):
    # Odd length and a width that is not a multiple of 64: both padded.
    scan = pallas.make_scan(prefetch=prefetch, interpret=False)
    _check_against_loop(scan, (3, 301, 200), dtype, reverse)


@pytest.mark.gpu
@needs_gpu
def test_auto_takes_the_compiled_kernel_on_gpu(caplog):
    with caplog.at_level(logging.WARNING, logger=dispatch.__name__):
        assert auto_impl() == "pallas"
    assert not caplog.records
    a, b, h0, _ = _inputs((2, 64, 128), jnp.bfloat16)
    h = linear_scan(jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16), h0=h0)
    want = numpy_scan(a, b, h0, False)
    np.testing.assert_allclose(np.asarray(h, np.float64), want, rtol=2e-2, atol=8e-2)
