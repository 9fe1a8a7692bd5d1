"""linear_scan's contract beyond values: dispatch, errors, jit, vmap, Pallas blocks, sharding."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from birdie_ssm.kernels import auto_impl, linear_scan, pallas
from birdie_ssm.kernels.vjp import shifted_backward, with_scan_vjp
from tests.kernels.oracle import numpy_scan

RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.uniform(-1, 1, (2, 9, 3)), jnp.float32)
B = jnp.asarray(RNG.normal(size=(2, 9, 3)), jnp.float32)


def test_auto_picks_the_measured_choice_per_backend():
    assert auto_impl("cpu") == "sequential"
    assert auto_impl("gpu") == "pallas"
    expected = linear_scan(A, B, impl=auto_impl())
    np.testing.assert_array_equal(linear_scan(A, B), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"impl": "cuda"}, "expected one of 'auto', 'reference'"),
        ({"b": B[:, :4]}, "same shape"),
        ({"a": A[0], "b": B[0]}, r"\[batch, length, dim\]"),
        ({"h0": jnp.zeros((2, 4))}, r"h0 must have shape \[batch, dim\] = \(2, 3\)"),
        ({"a": jnp.ones((2, 9, 3), jnp.int32)}, "floating-point"),
    ],
)
def test_bad_input_raises_value_error(kwargs, message):
    call = {"a": A, "b": B, **kwargs}
    with pytest.raises(ValueError, match=message):
        linear_scan(call.pop("a"), call.pop("b"), **call)


@pytest.mark.parametrize("impl", ["sequential", "associative", "pallas"])
def test_vmap_over_an_extra_axis_matches_the_loop(impl):
    a = jnp.stack([A, A[::-1]])
    b = jnp.stack([B, -B])
    scan = jax.jit(jax.vmap(partial(linear_scan, impl=impl, reverse=True)))
    out = scan(a, b)
    for i in range(2):
        expected = numpy_scan(a[i], b[i], np.zeros((2, 3)), reverse=True)
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-5)


def test_zero_decay_starts_a_new_sequence():
    a = A.at[:, 4].set(0.0)
    h0 = jnp.full((2, 3), 5.0)
    for reverse, later in ((False, slice(4, None)), (True, slice(0, 5))):
        with_start = linear_scan(a, B, h0=h0, reverse=reverse)
        without = linear_scan(a, B, reverse=reverse)
        np.testing.assert_array_equal(with_start[:, later], without[:, later])


@pytest.mark.parametrize("reverse", [False, True])
def test_pallas_carries_state_across_time_chunks_and_pads(reverse):
    # Blocks of 2 channels x 4 steps: 3 channels and 9 steps need padding and 3 chunks.
    small = partial(pallas.forward, block_d=2, block_t=4)
    scan = with_scan_vjp(small, shifted_backward(small))
    h0 = jnp.asarray(RNG.normal(size=(2, 3)), jnp.float32)
    out, pullback = jax.vjp(lambda a, b, h0: scan(a, b, h0, reverse), A, B, h0)
    np.testing.assert_allclose(out, numpy_scan(A, B, h0, reverse), rtol=1e-5, atol=1e-5)
    w = jnp.ones_like(B)
    expected = jax.vjp(
        lambda a, b, h0: linear_scan(a, b, h0=h0, reverse=reverse, impl="reference"), A, B, h0
    )[1](w)
    for got, ref in zip(pullback(w), expected, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_pallas_kernel_lowers_for_gpu_without_one():
    # Lowering runs the Pallas GPU front end (Mosaic GPU) on the host; compiling needs a GPU.
    fn = jax.jit(lambda a, b, h0: pallas.forward(a, b, h0, False, interpret=False))
    shape = jax.ShapeDtypeStruct((2, 100, 256), jnp.bfloat16)
    lowered = fn.trace(shape, shape, jax.ShapeDtypeStruct((2, 256), jnp.float32)).lower(
        lowering_platforms=("cuda",)
    )
    assert "mosaic_gpu" in lowered.as_text()


SHARDED_CHECK = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    from birdie_ssm.kernels import linear_scan

    assert jax.device_count() == 2
    rng = np.random.default_rng(0)
    a_np = rng.uniform(-1, 1, (4, 7, 3)).astype(np.float32)
    b_np = rng.normal(size=(4, 7, 3)).astype(np.float32)
    h0_np = np.ones((4, 3), np.float32)

    def loss(a, b, h0, impl):
        return jnp.sum(linear_scan(a, b, h0=h0, impl=impl) ** 2)

    want = jax.grad(loss, argnums=(0, 1, 2))(a_np, b_np, h0_np, "reference")
    scan = jax.jit(linear_scan, static_argnames="impl")
    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
    for axis_type in (AxisType.Auto, AxisType.Explicit):
        batch = NamedSharding(jax.make_mesh((2,), ("batch",), (axis_type,)), P("batch"))
        a, b, h0 = (jax.device_put(x, batch) for x in (a_np, b_np, h0_np))
        # reference shares sequential's pattern (ordinary XLA ops), so it is left out for time.
        for impl in ("sequential", "associative", "pallas"):
            out = scan(a, b, h0=h0, impl=impl)
            # A pallas_call is opaque to the partitioner, so it may gather; values still agree.
            kept = out.sharding.is_equivalent_to(batch, 3)
            assert kept or impl == "pallas", (impl, axis_type, out.sharding)
            for g, w in zip(grad(a, b, h0, impl), want):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    print("ok")
    """
)


def test_batch_sharded_inputs_in_a_two_device_subprocess():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", SHARDED_CHECK], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.gpu
@pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU")
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_pallas_on_gpu_matches_reference(dtype, reverse):
    shape = (2, 300, 384)
    a = jnp.asarray(RNG.uniform(0, 1, shape), dtype)
    b = jnp.asarray(RNG.normal(size=shape), dtype)
    h0 = jnp.asarray(RNG.normal(size=(2, 384)), jnp.float32)
    w = jnp.asarray(RNG.normal(size=shape), jnp.float32)

    def run(impl):
        def loss(a, b, h0):
            h = linear_scan(a, b, h0=h0, reverse=reverse, impl=impl)
            return jnp.sum(w * h.astype(jnp.float32)), h

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(a, b, h0)

    (_, got), got_grads = run("pallas")
    (_, want), want_grads = run("reference")
    tol = 1e-4 if dtype == jnp.float32 else 2e-2
    np.testing.assert_allclose(
        np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=tol, atol=tol
    )
    for g, r in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(
            np.asarray(g, np.float32), np.asarray(r, np.float32), rtol=tol, atol=tol
        )
