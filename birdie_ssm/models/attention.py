"""Multi-head attention mixer (``attention``) with RoPE and a KV cache for decoding.

Prefix-LM masking, the same invariant as the recurrent mixers: causal within a segment, never
across segments, and, in a bidirectional layer, full attention within each contiguous prefix run.

Two implementations of the same masked softmax (``BIRDIE_ATTENTION_IMPL`` in the environment,
read when a step is traced; an implementation choice, so not part of the model config):

- ``cudnn``: cuDNN's fused flash attention through ``jax.nn.dot_product_attention``; the score
  matrix is never written to memory. The prefix-LM and packing mask is passed whole (cuDNN
  turns it into an additive bias), so the mask stays exactly the explicit one. Needs a GPU,
  bfloat16/float16 activations, a head size that is a multiple of 8 (at most 256 on Hopper,
  128 before) and an even length.
- ``xla``: ``jax.nn.dot_product_attention(implementation="xla")``, scores and softmax in
  float32, queries in blocks of ``QUERY_BLOCK`` so no [L, L] score matrix is held whole.

``auto`` (the default) takes ``cudnn`` where it applies and has compiled on this backend (a
tiny probe, once per process), otherwise ``xla``. JAX's Pallas flash attention for GPUs was not
used: it takes segment ids and a causal flag but cannot express a bidirectional prefix run.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.config import ModelConfig
from birdie_ssm.errors import BirdieError, check_range
from birdie_ssm.models.layers import dense
from birdie_ssm.models.masks import SeqContext, StepContext
from birdie_ssm.models.registry import Mixer, MixerConfig, register_mixer

log = logging.getLogger(__name__)

KV = tuple[jax.Array, jax.Array]
# The xla path processes queries in blocks of this size so no [L, L] score matrix is held whole.
QUERY_BLOCK = 512
IMPLS = ("auto", "cudnn", "xla")
IMPL_ENV = "BIRDIE_ATTENTION_IMPL"


@dataclass(frozen=True)
class AttentionConfig(MixerConfig):
    """Parameters of the attention mixer."""

    num_heads: int = 4

    def __post_init__(self) -> None:
        check_range("num_heads", self.num_heads, 1, 256, integer=True)

    def check(self, model: ModelConfig) -> None:
        if model.width % (2 * self.num_heads):
            raise ValueError(
                f"model.width {model.width} must be a multiple of 2 * "
                f"model.mixers.attention.num_heads ({2 * self.num_heads}) so RoPE gets an even "
                "head size"
            )


def block_mask(segment_ids: jax.Array, runs: jax.Array, query_idx: jax.Array) -> jax.Array:
    """[B, 1, Q, L] bool for queries at ``query_idx``: causal in a segment, full in a prefix run."""
    seg_q = jnp.take(segment_ids, query_idx, axis=1, mode="fill", fill_value=-2)
    run_q = jnp.take(runs, query_idx, axis=1, mode="fill", fill_value=-1)
    same_seg = seg_q[:, :, None] == segment_ids[:, None, :]
    same_run = (run_q[:, :, None] == runs[:, None, :]) & (run_q[:, :, None] >= 0)
    causal = query_idx[:, None] >= jnp.arange(segment_ids.shape[1])[None, :]
    return (same_seg & (causal | same_run))[:, None]


def prefix_lm_mask(segment_ids: jax.Array, runs: jax.Array) -> jax.Array:
    """[B, 1, L, L] bool over a whole row: ``block_mask`` for every query."""
    return block_mask(segment_ids, runs, jnp.arange(segment_ids.shape[1]))


def _sdpa(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, implementation: str
) -> jax.Array:
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=implementation)


def compare_impls(impl: str, dtype: str, reference: str = "xla") -> str | None:
    """Run a tiny masked attention forward and backward with ``impl`` and ``reference``.

    Returns why ``impl`` is unusable (it fails to build or run, or its gradients differ), or
    None. Evaluated eagerly even when called while a step is being traced.
    """
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 128, 2, 64)).astype(dtype) for _ in range(3))
    segs = np.repeat([[1, 2]], 64, axis=1).repeat(2, axis=0)
    runs = np.where(np.arange(128) % 64 < 16, segs, -1)

    def loss(q, k, v, impl):
        mask = prefix_lm_mask(jnp.asarray(segs), jnp.asarray(runs))
        return jnp.sum(_sdpa(q, k, v, mask, impl).astype(jnp.float32) ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
    try:
        with jax.ensure_compile_time_eval():
            got, want = (jax.device_get(grad(q, k, v, i)) for i in (impl, reference))
    except Exception as exc:  # any failure to build or run means: do not use it
        return f"{impl} attention failed to compile or run: {type(exc).__name__}: {exc}"[:300]
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
        err = np.max(np.abs(g - w)) / (np.max(np.abs(w)) + 1e-6)
        if not err < 0.05:
            return (
                f"{impl} attention gradients differ from {reference}'s (relative error {err:.3g})"
            )
    return None


@functools.cache
def cudnn_problem(dtype: str) -> str | None:
    """Why cuDNN attention cannot serve ``dtype`` activations here (None: it can).

    Probed once per process (``compare_impls``), so ``auto`` never picks a kernel that fails
    to build on this GPU or disagrees with the xla path.
    """
    if jax.default_backend() != "gpu":
        return f"backend is {jax.default_backend()}, not gpu"
    if jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
        return f"cuDNN attention needs bfloat16 or float16 activations, not {dtype}"
    return compare_impls("cudnn", dtype)


def requested_impl() -> str:
    """The implementation ``BIRDIE_ATTENTION_IMPL`` asks for (default ``auto``)."""
    impl = os.environ.get(IMPL_ENV, "auto").strip().lower() or "auto"
    if impl not in IMPLS:
        raise BirdieError(f"{IMPL_ENV}={impl!r} is not one of {', '.join(IMPLS)}")
    return impl


def choose_impl(impl: str, dtype: jnp.dtype, head_dim: int, length: int) -> str:
    """The implementation a layer runs: ``impl``, or for ``auto`` cuDNN where it applies."""
    if impl == "xla":
        return "xla"
    limit = 256 if _hopper_or_later() else 128
    fits = head_dim % 8 == 0 and head_dim <= limit and length % 2 == 0
    if impl == "cudnn":
        problem = cudnn_problem(jnp.dtype(dtype).name) or (
            None
            if fits
            else f"head size {head_dim} (multiple of 8, <= {limit}) or odd length {length}"
        )
        if problem:
            raise BirdieError(f"{IMPL_ENV}=cudnn cannot be used: {problem}")
        return "cudnn"
    if not fits or cudnn_problem(jnp.dtype(dtype).name) is not None:
        return "xla"
    return "cudnn"


@functools.cache
def _hopper_or_later() -> bool:
    device = jax.local_devices()[0]
    capability = getattr(device, "compute_capability", None)
    try:
        return tuple(int(x) for x in str(capability).split(".")) >= (9, 0)
    except ValueError:
        return False


@functools.cache
def _warn_fallback(dtype: str) -> None:
    problem = cudnn_problem(dtype)
    if problem and jax.default_backend() == "gpu":
        log.warning("attention: using the xla path (scores in memory): %s", problem)


def pad_cache(state: KV, max_len: int) -> KV:
    """Keys and values padded to ``max_len`` slots: an attention layer's decode cache."""
    pad = ((0, 0), (0, max_len - state[0].shape[1]), (0, 0), (0, 0))
    return jnp.pad(state[0], pad), jnp.pad(state[1], pad)


def write_cache(cache: KV, k: jax.Array, v: jax.Array, index: jax.Array) -> KV:
    """One decode step's key and value written to slot ``index`` of an attention cache."""
    return (
        jax.lax.dynamic_update_slice_in_dim(cache[0], k, index, axis=1),
        jax.lax.dynamic_update_slice_in_dim(cache[1], v, index, axis=1),
    )


def rope(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary embedding of x [B, L, H, Dh] at integer positions [B, L]."""
    half = x.shape[-1] // 2
    freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle = positions[..., None, None].astype(jnp.float32) * freq
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


@register_mixer("attention")
class Attention(Mixer):
    """Multi-head self-attention with RoPE on queries and keys."""

    Config = AttentionConfig

    def __init__(
        self, config: ModelConfig, params: AttentionConfig, bidirectional: bool, *, rngs: nnx.Rngs
    ):
        dtype = jnp.dtype(config.dtype)
        self.bidirectional = bidirectional
        self.heads, self.head_dim = params.num_heads, config.width // params.num_heads
        self.qkv = dense(config.width, 3 * config.width, dtype, rngs)
        self.out = dense(config.width, config.width, dtype, rngs, scale=1.0 / config.depth)

    def _project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, ...]:
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        shape = (*x.shape[:-1], self.heads, self.head_dim)
        q, k, v = (t.reshape(shape) for t in (q, k, v))
        return rope(q, positions), rope(k, positions), v

    def _attend(
        self, q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, runs: jax.Array
    ) -> jax.Array:
        batch, length = q.shape[:2]
        requested = requested_impl()
        impl = choose_impl(requested, q.dtype, self.head_dim, length)
        if impl != "cudnn" and requested == "auto":  # asked for xla: no probe, no warning
            _warn_fallback(jnp.dtype(q.dtype).name)
        if impl == "cudnn":
            y = _sdpa(q, k, v, prefix_lm_mask(segment_ids, runs), "cudnn")
        elif length <= QUERY_BLOCK:
            y = _sdpa(q, k, v, prefix_lm_mask(segment_ids, runs), "xla")
        else:
            blocks = -(-length // QUERY_BLOCK)
            qb = jnp.pad(q, ((0, 0), (0, blocks * QUERY_BLOCK - length), (0, 0), (0, 0)))
            qb = jnp.swapaxes(qb.reshape(batch, blocks, QUERY_BLOCK, *q.shape[2:]), 0, 1)
            idx = jnp.arange(blocks * QUERY_BLOCK).reshape(blocks, QUERY_BLOCK)

            # Recompute each block's scores in the backward pass instead of storing them.
            @jax.checkpoint
            def one_block(args):
                q_block, idx_block = args
                mask = block_mask(segment_ids, runs, idx_block)
                return _sdpa(q_block, k, v, mask, "xla")

            y = jax.lax.map(one_block, (qb, idx))
            y = jnp.swapaxes(y, 0, 1).reshape(batch, blocks * QUERY_BLOCK, *q.shape[2:])[:, :length]
        return self.out(y.reshape(batch, length, -1))

    def __call__(self, x: jax.Array, ctx: SeqContext) -> tuple[jax.Array, KV]:
        """x [B, L, width] -> (y [B, L, width], keys and values of every position)."""
        q, k, v = self._project(x, ctx.positions)
        # A causal layer treats no position as prefix: no prefix run, so plain causal attention.
        runs = ctx.runs if self.bidirectional else jnp.full_like(ctx.runs, -1)
        return self._attend(q, k, v, ctx.segment_ids, runs), (k, v)

    def to_cache(self, state: KV, max_len: int) -> KV:
        return pad_cache(state, max_len)

    def step(self, x: jax.Array, cache: KV, ctx: StepContext) -> tuple[jax.Array, KV]:
        """x [B, width] written to cache slot ``ctx.index``, attending to its segment's slots."""
        q, k, v = self._project(x[:, None], ctx.positions[:, None])
        k_cache, v_cache = write_cache(cache, k, v, ctx.index)
        y = _sdpa(q, k_cache, v_cache, ctx.attend[:, None, None, :], "xla")
        return self.out(y.reshape(x.shape)), (k_cache, v_cache)
