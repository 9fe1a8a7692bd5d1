"""Pallas scan kernels: lowered through Triton on GPU, run with ``interpret=True`` elsewhere.

The grid is (batch, channel block). Each program walks the whole length with a float32 carry,
``block_t`` steps per loop iteration, unrolled, taking its rows from one loaded
[block_t, block_d] tile per input. A whole tile's loads are in flight at once, where a load
per row could not be moved ahead of the previous row's store (the compiler cannot tell the
buffers apart); ``prefetch`` also loads the next tiles during the current ones' work. The Triton
lowering has no ``lax.slice`` of a register tile and no SMEM scratch, but splits a
tile into a power-of-two count of equal parts (``jnp.split``); each row's result is stored as its
own [1, block_d] row, as Triton concatenates only pairs along the last axis.

The backward kernel fuses the custom VJP's elementwise parts (vjp.py) into the reverse walk: it
reads a, h and dh once, writes da and db once, and its last carry is dh0.

Inputs are padded to whole blocks with a = 1, b = 0 (dh = 0), which carries the state, and the
cotangent, through the padding unchanged in either direction.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.sharding import PartitionSpec

from birdie_ssm.kernels.numpy_loop import numpy_scan, numpy_scan_vjp, scan_case
from birdie_ssm.kernels.vjp import with_scan_vjp

try:  # Pallas' Triton lowering; a jaxlib without GPU support may lack it.
    from jax.experimental.pallas import triton as _triton
except ImportError:  # pragma: no cover - depends on the installed jaxlib
    _triton = None

BLOCK_D = 64  # channels per program
BLOCK_T = 32  # time steps per unrolled loop iteration
# Interpreted, an unrolled step costs compile time and gains nothing: short iterations keep the
# CPU tests fast (the kernel's result does not depend on the block sizes).
INTERPRET_BLOCK_T = 4
NUM_WARPS = 4
# Load the next tiles before the current ones' work (see _walk); off until measured on a GPU.
PREFETCH = False


def _pow2_at_most(n: int, cap: int) -> int:
    """The smallest power of two >= n, capped: Triton tiles have power-of-two sides."""
    return min(cap, 1 << max(n - 1, 0).bit_length())


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _compiler_params(num_warps: int) -> object:
    if _triton is None:
        raise RuntimeError(
            "this jax has no Pallas Triton lowering (jax.experimental.pallas.triton); "
            "use linear_scan(impl='associative') on this GPU"
        )
    # Older JAX names it TritonCompilerParams.
    params = getattr(_triton, "CompilerParams", None) or _triton.TritonCompilerParams
    # One stage: no loop here feeds a dot, so software pipelining has nothing to overlap.
    return params(num_warps=num_warps, num_stages=1)


def _split(tile: jax.Array, block_t: int) -> list[jax.Array]:
    """A loaded [block_t, block_d] tile as float32 [1, block_d] rows."""
    tile = tile.astype(jnp.float32)
    return jnp.split(tile, block_t, axis=0) if block_t > 1 else [tile]


def _store_row(ref, t: jax.Array, row: jax.Array) -> None:
    ref[pl.ds(t, 1), :] = row.astype(ref.dtype)


def _walk(refs, block_t: int, backwards: bool, prefetch: bool, body: Callable, init):
    """Loop over the [block_t, block_d] tiles of ``refs`` in time order (or ``backwards``);
    ``body(start, tiles, carry) -> carry`` gets each tile loaded whole, in the refs' dtype.

    ``prefetch`` loads the next tiles before the current ones' work, so that their loads are in
    flight meanwhile (the last iteration reloads its own, unused).
    """
    chunks = refs[0].shape[0] // block_t

    def start_of(i):
        k = chunks - 1 - i if backwards else i
        # A traced start gets the alignment hint; the prefetch's first (a Python int) needs none.
        return k * block_t if isinstance(k, int) else pl.multiple_of(k * block_t, block_t)

    def load(i):
        start = start_of(i)
        return tuple(ref[pl.ds(start, block_t), :] for ref in refs)

    if not prefetch:
        return jax.lax.fori_loop(0, chunks, lambda i, c: body(start_of(i), load(i), c), init)

    def step(i, state):
        carry, tiles = state
        upcoming = load(jnp.minimum(i + 1, chunks - 1))
        return body(start_of(i), tiles, carry), upcoming

    return jax.lax.fori_loop(0, chunks, step, (init, load(0)))[0]


def _forward_kernel(
    a_ref, b_ref, h0_ref, h_ref, *, block_t: int, reverse: bool, prefetch: bool
) -> None:
    def chunk(start, tiles, h):
        a_rows, b_rows = (_split(tile, block_t) for tile in tiles)
        for r in reversed(range(block_t)) if reverse else range(block_t):
            h = a_rows[r] * h + b_rows[r]
            _store_row(h_ref, start + r, h)
        return h

    _walk((a_ref, b_ref), block_t, reverse, prefetch, chunk, h0_ref[...].astype(jnp.float32))


def _backward_kernel(
    a_ref,
    h_ref,
    dh_ref,
    h0_ref,
    da_ref,
    db_ref,
    dh0_ref,
    *,
    block_t: int,
    reverse: bool,
    prefetch: bool,
    first: int,
) -> None:
    """g_t = dh_t + a_{t+1} g_{t+1} against the scan's direction; da_t = g_t h_{t-1}, db_t = g_t.

    ``first`` is the scan's first step (0, or length - 1 for a reverse scan): its h_{t-1} is h0.
    """
    last_row = a_ref.shape[0] - 1
    h0 = h0_ref[...].astype(jnp.float32)

    def chunk(start, tiles, flow):
        a_rows, h_rows, dh_rows = (_split(tile, block_t) for tile in tiles)
        # The state before the tile's first step in scan order is the neighbouring tile's edge
        # row (clamped in range; where it would be out of range, `first` selects h0 instead).
        if reverse:
            edge = h_ref[pl.ds(jnp.minimum(start + block_t, last_row), 1), :]
            h_prev = [*h_rows[1:], edge.astype(jnp.float32)]
        else:
            edge = h_ref[pl.ds(jnp.maximum(start - 1, 0), 1), :]
            h_prev = [edge.astype(jnp.float32), *h_rows[:-1]]
        for r in range(block_t) if reverse else reversed(range(block_t)):
            g = dh_rows[r] + flow
            before = jnp.where(start + r == first, h0, h_prev[r])
            _store_row(da_ref, start + r, g * before)
            _store_row(db_ref, start + r, g)
            flow = a_rows[r] * g
        return flow

    refs = (a_ref, h_ref, dh_ref)
    dh0_ref[...] = _walk(refs, block_t, not reverse, prefetch, chunk, jnp.zeros_like(h0))


def _layout(
    shape: tuple[int, ...], block_t: int, block_d: int
) -> tuple[int, int, tuple[tuple[int, int], ...], pl.BlockSpec, pl.BlockSpec, tuple[int, int]]:
    """Block sizes, padding, and the per-program BlockSpecs of [batch, length, dim] and h0."""
    batch, length, dim = shape
    bt, bd = _pow2_at_most(length, block_t), _pow2_at_most(dim, block_d)
    padded_t, padded_d = _round_up(length, bt), _round_up(dim, bd)
    pad = ((0, 0), (0, padded_t - length), (0, padded_d - dim))
    whole = pl.BlockSpec((None, padded_t, bd), lambda i, j: (i, 0, j))
    edge = pl.BlockSpec((None, 1, bd), lambda i, j: (i, 0, j))
    return bt, bd, pad, whole, edge, (batch, padded_d // bd)


def _call(
    name: str, kernel: Callable, grid, in_specs, out_specs, out_shape, interpret, num_warps
) -> Callable:
    # The name is the kernel's in profiles and HLO (benchmarks/step_profile.py looks for it).
    return pl.pallas_call(
        kernel,
        name=name,
        out_shape=out_shape,
        grid=grid,
        in_specs=in_specs,
        out_specs=out_specs,
        compiler_params=None if interpret else _compiler_params(num_warps),
        interpret=interpret,
    )


def _local_forward(a, b, h0, reverse, *, block_d, block_t, interpret, num_warps, prefetch):
    bt, bd, pad, whole, edge, grid = _layout(a.shape, block_t, block_d)
    a_p, b_p = jnp.pad(a, pad, constant_values=1), jnp.pad(b, pad)
    h0_p = jnp.pad(h0, (pad[0], pad[2]))[:, None, :]
    kernel = partial(_forward_kernel, block_t=bt, reverse=reverse, prefetch=prefetch)
    out_shape = jax.ShapeDtypeStruct(b_p.shape, b.dtype)
    specs = ([whole, whole, edge], whole)
    call = _call("linear_scan_forward", kernel, grid, *specs, out_shape, interpret, num_warps)
    _, length, dim = a.shape
    return call(a_p, b_p, h0_p)[:, :length, :dim]


def _local_backward(a, h, h0, dh, reverse, *, block_d, block_t, interpret, num_warps, prefetch):
    bt, bd, pad, whole, edge, grid = _layout(a.shape, block_t, block_d)
    _, length, dim = a.shape
    a_p, h_p, dh_p = jnp.pad(a, pad, constant_values=1), jnp.pad(h, pad), jnp.pad(dh, pad)
    h0_p = jnp.pad(h0, (pad[0], pad[2]))[:, None, :]
    first = length - 1 if reverse else 0
    kernel = partial(_backward_kernel, block_t=bt, reverse=reverse, prefetch=prefetch, first=first)
    out_shape = (
        jax.ShapeDtypeStruct(a_p.shape, a.dtype),
        jax.ShapeDtypeStruct(h_p.shape, h.dtype),
        jax.ShapeDtypeStruct(h0_p.shape, jnp.float32),
    )
    specs = ([whole, whole, whole, edge], (whole, whole, edge))
    call = _call("linear_scan_backward", kernel, grid, *specs, out_shape, interpret, num_warps)
    da, db, dh0 = call(a_p, h_p, dh_p, h0_p)
    return da[:, :length, :dim], db[:, :length, :dim], dh0[:, 0, :dim]


def _settings(
    block_d: int, block_t: int | None, interpret: bool | None, num_warps: int, prefetch: bool
) -> dict:
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    if block_t is None:
        block_t = INTERPRET_BLOCK_T if interpret else BLOCK_T
    for name, size in (("block_t", block_t), ("block_d", block_d)):
        if size < 1 or size & (size - 1):
            raise ValueError(f"{name} must be a power of two (Triton tiles are); got {size}")
    return {
        "block_d": block_d,
        "block_t": block_t,
        "interpret": interpret,
        "num_warps": num_warps,
        "prefetch": prefetch,
    }


def _per_batch_shard(run: Callable, *arrays: jax.Array):
    """Run ``run`` per shard when the inputs are explicitly sharded over batch.

    A kernel sees one device's block, so it cannot take a global, batch-sharded array whole.
    """
    sharding = jax.typeof(arrays[0]).sharding
    batch_axes = sharding.spec[0] if sharding.spec else None
    if batch_axes is None:
        return run(*arrays)
    spec = PartitionSpec(batch_axes)
    # check_vma=False: pallas_call output shapes carry no varying-axes annotation.
    mapped = jax.shard_map(
        run, mesh=sharding.mesh, in_specs=(spec,) * len(arrays), out_specs=spec, check_vma=False
    )
    return mapped(*arrays)


def forward(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array,
    reverse: bool,
    *,
    block_d: int = BLOCK_D,
    block_t: int | None = None,
    interpret: bool | None = None,
    num_warps: int = NUM_WARPS,
    prefetch: bool = PREFETCH,
) -> jax.Array:
    """h_t = a_t * h_{t-1} + b_t over axis 1 of [batch, length, dim]; float32 carry.

    ``interpret=None`` compiles on GPU and interprets elsewhere; ``block_t=None`` takes BLOCK_T
    compiled and INTERPRET_BLOCK_T interpreted; ``num_warps`` is Triton's, per program.
    """
    settings = _settings(block_d, block_t, interpret, num_warps, prefetch)
    return _per_batch_shard(partial(_local_forward, reverse=reverse, **settings), a, b, h0)


def backward(
    a: jax.Array,
    h: jax.Array,
    h0: jax.Array,
    dh: jax.Array,
    reverse: bool,
    *,
    block_d: int = BLOCK_D,
    block_t: int | None = None,
    interpret: bool | None = None,
    num_warps: int = NUM_WARPS,
    prefetch: bool = PREFETCH,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cotangents (da, db, dh0) of ``forward``: one fused kernel walking the other way."""
    settings = _settings(block_d, block_t, interpret, num_warps, prefetch)
    return _per_batch_shard(partial(_local_backward, reverse=reverse, **settings), a, h, h0, dh)


def make_scan(**kwargs) -> Callable[..., jax.Array]:
    """``scan(a, b, h0, reverse)`` with the custom VJP; kwargs go to forward and backward."""
    return with_scan_vjp(partial(forward, **kwargs), partial(backward, **kwargs))


scan = make_scan()

# The probe: bfloat16 and float32, both directions, padding in length and width.
PROBE_SHAPE = (2, 40, 72)
PROBE_CASES = ((jnp.bfloat16, False, 2e-2), (jnp.float32, True, 1e-4))


def probe(backend: str, **blocks: int) -> None:
    """Compile and run the kernels (forward and backward) at a tiny shape on ``backend``.

    Raises if lowering, compiling or running fails, or if any output misses the float64 NumPy
    loop. Interprets the kernels off GPU; ``blocks`` (block_t, block_d) go to ``make_scan``.
    """
    device = jax.local_devices(backend=backend)[0]
    run_scan = make_scan(interpret=backend != "gpu", **blocks)
    rng = np.random.default_rng(0)
    for dtype, reverse, tol in PROBE_CASES:
        a, b, dh, h0 = scan_case(rng, PROBE_SHAPE, dtype)

        def value_and_grads(a, b, h0, dh, reverse=reverse):
            h, pullback = jax.vjp(lambda a, b, h0: run_scan(a, b, h0, reverse), a, b, h0)
            return h, *pullback(dh)

        inputs = [jax.device_put(jnp.asarray(x, t), device) for x, t in
                  ((a, dtype), (b, dtype), (h0, jnp.float32), (dh, dtype))]  # fmt: skip
        got = jax.jit(value_and_grads)(*inputs)
        want = (numpy_scan(a, b, h0, reverse), *numpy_scan_vjp(a, b, h0, dh, reverse))
        for name, x, y in zip(("h", "da", "db", "dh0"), got, want, strict=True):
            error = float(np.max(np.abs(np.asarray(x, np.float64) - y)))
            if not error <= tol * (1.0 + float(np.max(np.abs(y)))):
                raise RuntimeError(
                    f"{name} misses the float64 loop by {error:.3g} ({jnp.dtype(dtype).name}, "
                    f"reverse={reverse})"
                )
