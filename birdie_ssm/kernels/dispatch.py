"""``linear_scan``: input checks and the choice among the implementations.

``impl="auto"`` picks, per backend (docs/benchmarks.md has the figures, from
benchmarks/scan.py):

- CPU: ``"sequential"``, the fastest there: a scan is memory-bound, and it moves no more bytes
  than one elementwise pass (no transposes to time-major and back, no tree of partial products).
- GPU: ``"pallas"``, the sequential-in-time Triton kernel with blocks over channels, the
  design that beats an associative scan on accelerators (RecurrentGemma).
- Anything else: ``"sequential"``, the implementation with no backend-specific code.

A complex recurrence (a and b both complex) runs in complex64 on the implementations in
COMPLEX_IMPLS; ``auto`` picks among them (``associative`` where its usual choice cannot), and
naming another one is an error.

A choice with a probe in PROBES is taken only once its probe (a tiny compile and run, checked
against the float64 loop) passed on the backend, once per process; otherwise ``auto`` takes
FALLBACK and logs one warning line, so that ``auto`` never picks a path that cannot compile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import jax
import jax.numpy as jnp

from birdie_ssm import plugins
from birdie_ssm.kernels import associative, pallas, reference, sequential
from birdie_ssm.kernels.vjp import carry_dtype

log = logging.getLogger(__name__)

IMPLS: plugins.Registry[Callable[..., jax.Array]] = plugins.Registry("scan impl", error=ValueError)
IMPLS.update(
    reference=reference.scan,
    associative=associative.scan,
    pallas=pallas.scan,
    sequential=sequential.scan,
)
AUTO_CHOICE = {"cpu": "sequential", "gpu": "pallas"}
FALLBACK = "associative"
# The implementations whose carry may be complex (the Pallas kernel's tiles are real).
COMPLEX_IMPLS = ("reference", "associative", "sequential")
# probe(backend) raises unless the implementation compiles, runs and is right on the backend.
PROBES: dict[str, Callable[[str], None]] = {"pallas": pallas.probe}


@cache
def probe_passes(impl: str, backend: str) -> bool:
    """Whether ``impl``'s probe passes on ``backend`` (True without a probe); cached per process."""
    probe = PROBES.get(impl)
    if probe is None:
        return True
    try:
        # Often called while a jit traces the model: a fresh thread runs the probe outside that
        # trace (JAX keeps trace state per thread), compiling and running it for real.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(probe, backend).result()
    except Exception as error:  # any failure to lower, compile, run or match rules it out
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        log.warning(
            "linear_scan: impl=%r failed its probe on %s (%s: %s); impl='auto' uses %r instead",
            impl, backend, type(error).__name__, reason, FALLBACK,
        )  # fmt: skip
        return False
    return True


def auto_impl(backend: str | None = None) -> str:
    """The implementation ``impl="auto"`` uses on ``backend`` (default: JAX's default backend)."""
    backend = backend or jax.default_backend()
    choice = AUTO_CHOICE.get(backend, "sequential")
    return choice if probe_passes(choice, backend) else FALLBACK


def _check(a: jax.Array, b: jax.Array, h0: jax.Array | None, impl: str) -> None:
    if impl != "auto":
        IMPLS.lookup(impl)
    if jnp.ndim(a) != 3 or jnp.ndim(b) != 3:
        raise ValueError(
            f"a and b must be [batch, length, dim] arrays; got shapes {jnp.shape(a)} and "
            f"{jnp.shape(b)}"
        )
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(f"a and b must have the same shape; got {jnp.shape(a)} and {jnp.shape(b)}")
    batch, _, dim = jnp.shape(b)
    if h0 is not None and jnp.shape(h0) != (batch, dim):
        raise ValueError(f"h0 must have shape [batch, dim] = {(batch, dim)}; got {jnp.shape(h0)}")
    for name, x in (("a", a), ("b", b), ("h0", h0)):
        if x is not None and not jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            raise ValueError(f"{name} must be a floating-point array; got {jnp.result_type(x)}")
    if jnp.iscomplexobj(a) != jnp.iscomplexobj(b):
        raise ValueError(
            f"a and b must be both real or both complex; got {jnp.result_type(a)} and "
            f"{jnp.result_type(b)}"
        )
    if jnp.iscomplexobj(b) and impl not in ("auto", *COMPLEX_IMPLS):
        raise ValueError(
            f"scan impl {impl!r} cannot carry a complex recurrence; use one of "
            f"{', '.join(repr(name) for name in ('auto', *COMPLEX_IMPLS))}"
        )


def complex_impl(impl: str) -> str:
    """The implementation a complex recurrence runs on when ``impl`` is asked for."""
    chosen = auto_impl() if impl == "auto" else impl
    return chosen if chosen in COMPLEX_IMPLS else FALLBACK


def linear_scan(
    a: jax.Array,
    b: jax.Array,
    *,
    h0: jax.Array | None = None,
    reverse: bool = False,
    impl: str = "auto",
) -> jax.Array:
    """Return h with h_t = a_t * h_{t-1} + b_t over [batch, length, dim] inputs.

    ``reverse=True`` runs h_t = a_t * h_{t+1} + b_t from the end; ``a_t = 0`` starts afresh.
    Complex a and b give a complex64 recurrence (implementations in COMPLEX_IMPLS).
    """
    _check(a, b, h0, impl)
    a, b = jnp.asarray(a), jnp.asarray(b)
    batch, _, dim = b.shape
    start = jnp.zeros((batch, dim), carry_dtype(b)) if h0 is None else jnp.asarray(h0)
    if jnp.iscomplexobj(b):
        scan = IMPLS[complex_impl(impl)]
    else:
        scan = IMPLS[auto_impl() if impl == "auto" else impl]
    return scan(a, b, start, bool(reverse))
