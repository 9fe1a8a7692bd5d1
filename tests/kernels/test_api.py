"""linear_scan's contract beyond values: dispatch and its probe, errors, jit, vmap, sharding."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from birdie_ssm.kernels import auto_impl, dispatch, linear_scan, pallas
from tests.kernels.oracle import numpy_scan

RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.uniform(-1, 1, (2, 9, 3)), jnp.float32)
B = jnp.asarray(RNG.normal(size=(2, 9, 3)), jnp.float32)


@pytest.fixture
def calls(monkeypatch):
    """The implementations linear_scan runs, by name, in order."""
    called = []
    for name, impl in list(dispatch.IMPLS.items()):

        def spy(*args, name=name, impl=impl):
            called.append(name)
            return impl(*args)

        monkeypatch.setitem(dispatch.IMPLS, name, spy)
    return called


@pytest.fixture
def fresh_probes(monkeypatch):
    """Forget the process's probe results for the test, and again after it."""
    dispatch.probe_passes.cache_clear()
    yield
    dispatch.probe_passes.cache_clear()


def test_auto_runs_one_implementation_the_one_it_names(calls):
    h = linear_scan(A, B)
    assert calls == [auto_impl()] and auto_impl() in dispatch.IMPLS
    np.testing.assert_allclose(h, numpy_scan(A, B, np.zeros((2, 3)), False), rtol=1e-5, atol=1e-5)


def test_auto_falls_back_with_one_warning_when_the_probe_fails(
    monkeypatch, caplog, calls, fresh_probes
):
    def broken(backend):
        raise AssertionError("rule is not None\n(a second line that the warning leaves out)")

    monkeypatch.setitem(dispatch.PROBES, "pallas", broken)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with caplog.at_level(logging.WARNING, logger=dispatch.__name__):
        first, second = linear_scan(A, B), jax.jit(linear_scan)(A, B)
    assert calls == ["associative", "associative"]
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message and "impl='pallas' failed its probe on gpu" in message
    assert "AssertionError: rule is not None" in message and "uses 'associative'" in message
    for h in (first, second):
        np.testing.assert_allclose(h, numpy_scan(A, B, np.zeros((2, 3)), False), atol=1e-5)


def test_auto_probes_once_per_process_even_inside_a_trace(monkeypatch, calls, fresh_probes):
    # The CPU choice given a probe: pallas, interpreted, probed from within jit's trace.
    probed = []

    def counting_probe(backend):
        probed.append(backend)
        pallas.probe(backend, block_t=2, block_d=8)

    monkeypatch.setitem(dispatch.AUTO_CHOICE, "cpu", "pallas")
    monkeypatch.setitem(dispatch.PROBES, "pallas", counting_probe)
    grad = jax.jit(jax.grad(lambda a, b: jnp.sum(linear_scan(a, b) ** 2)))
    grad(A, B)
    linear_scan(A, B)
    assert probed == ["cpu"]
    assert calls == ["pallas", "pallas"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"impl": "cuda"}, "unknown scan impl 'cuda'"),
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


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_batch_sharded_inputs_in_a_two_device_subprocess():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", SHARDED_CHECK], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
