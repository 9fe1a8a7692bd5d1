"""Pallas kernel: grid over (batch, channel block, time chunk), sequential loop over time inside.

The time-chunk grid axis is sequential and carries the float32 state in a scratch buffer, so on
GPU each program streams [chunk, block] tiles through shared memory (pipelined copies under the
default Mosaic GPU lowering) while the loop over the chunk's steps stays in registers. Inputs are
padded to whole blocks with a = 1, b = 0, which carries the state through unchanged in either
direction. Off GPU the same kernel runs with ``interpret=True``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu
from jax.sharding import PartitionSpec

from birdie_ssm.kernels.vjp import shifted_backward, with_scan_vjp

BLOCK_D = 128  # one warpgroup's worth of lanes on GPU
BLOCK_T = 64
PIPELINE_STAGES = 2


def _kernel(a_ref, b_ref, h0_ref, h_ref, carry_ref, *, block_t: int, reverse: bool):
    @pl.when(pl.program_id(2) == 0)
    def _():
        carry_ref[...] = h0_ref[...]

    def step(i, h):
        t = block_t - 1 - i if reverse else i
        h = a_ref[t, :].astype(jnp.float32) * h + b_ref[t, :].astype(jnp.float32)
        h_ref[t, :] = h.astype(h_ref.dtype)
        return h

    carry_ref[...] = jax.lax.fori_loop(0, block_t, step, carry_ref[...])


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _local_forward(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array,
    reverse: bool,
    *,
    block_d: int = BLOCK_D,
    block_t: int = BLOCK_T,
    interpret: bool | None = None,
) -> jax.Array:
    batch, length, dim = a.shape
    padded_t, padded_d = _round_up(length, block_t), _round_up(dim, block_d)
    pad = ((0, 0), (0, padded_t - length), (0, padded_d - dim))
    a_p = jnp.pad(a, pad, constant_values=1)
    b_p = jnp.pad(b, pad)
    h0_p = jnp.pad(h0, ((0, 0), (0, padded_d - dim)))
    chunks = padded_t // block_t

    def chunk(k):
        return chunks - 1 - k if reverse else k

    tile = pl.BlockSpec((None, block_t, block_d), lambda i, j, k: (i, chunk(k), j))
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    params = (
        plgpu.CompilerParams(
            dimension_semantics=("parallel", "parallel", "sequential"),
            max_concurrent_steps=PIPELINE_STAGES,
        )
        if not interpret
        else None
    )
    h = pl.pallas_call(
        partial(_kernel, block_t=block_t, reverse=reverse),
        out_shape=jax.ShapeDtypeStruct(b_p.shape, b.dtype),
        grid=(batch, padded_d // block_d, chunks),
        in_specs=[tile, tile, pl.BlockSpec((None, block_d), lambda i, j, k: (i, j))],
        out_specs=tile,
        scratch_shapes=[plgpu.SMEM((block_d,), jnp.float32)],
        compiler_params=params,
        interpret=interpret,
    )(a_p, b_p, h0_p)
    return h[:, :length, :dim]


def forward(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array,
    reverse: bool,
    *,
    block_d: int = BLOCK_D,
    block_t: int = BLOCK_T,
    interpret: bool | None = None,
) -> jax.Array:
    """h_t = a_t * h_{t-1} + b_t over axis 1 of [batch, length, dim]; float32 carry.

    ``interpret=None`` compiles on GPU and interprets elsewhere.
    """
    run = partial(
        _local_forward, reverse=reverse, block_d=block_d, block_t=block_t, interpret=interpret
    )
    sharding = jax.typeof(a).sharding
    batch_axes = sharding.spec[0] if sharding.spec else None
    if batch_axes is None:
        return run(a, b, h0)
    # A kernel sees one device's block: with an explicitly batch-sharded input, run it per shard.
    spec = PartitionSpec(batch_axes)
    # check_vma=False: pallas_call output shapes carry no varying-axes annotation.
    mapped = jax.shard_map(
        run, mesh=sharding.mesh, in_specs=(spec, spec, spec), out_specs=spec, check_vma=False
    )
    return mapped(a, b, h0)


scan = with_scan_vjp(forward, shifted_backward(forward))
