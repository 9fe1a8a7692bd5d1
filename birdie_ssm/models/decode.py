"""Batched autoregressive generation: prefill a prompt, then one compiled loop over new tokens."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from birdie_ssm.errors import BirdieError


def pack_prompts(
    prompts: Sequence[Sequence[int]] | np.ndarray | jax.Array, prefix_len: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-pad prompts into ids, prefix_mask and segment_ids (padding = segment 0).

    ``prefix_len`` None makes each whole prompt the bidirectional prefix; an int marks only each
    prompt's first ``prefix_len`` tokens (0: a causal prompt).
    """
    rows = [np.asarray(p, np.int32).reshape(-1) for p in prompts]
    if not rows or min(len(r) for r in rows) == 0:
        raise BirdieError("generate needs at least one prompt and every prompt needs a token")
    length = max(len(r) for r in rows)
    ids = np.zeros((len(rows), length), np.int32)
    segment_ids = np.zeros((len(rows), length), np.int32)
    prefix_mask = np.zeros((len(rows), length), bool)
    for i, row in enumerate(rows):
        start = length - len(row)
        ids[i, start:] = row
        segment_ids[i, start:] = 1
        n_prefix = len(row) if prefix_len is None else min(prefix_len, len(row))
        prefix_mask[i, start : start + n_prefix] = True
    return ids, prefix_mask, segment_ids


def _sample(
    logits: jax.Array, rng: jax.Array, sampling: bool, temperature: jax.Array, top_k: jax.Array
) -> jax.Array:
    if not sampling:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    # top_k is traced (one compilation serves every k): the k-th largest logit is the threshold.
    kth = jnp.take(jnp.sort(logits, axis=-1)[:, ::-1], top_k - 1, axis=-1)[:, None]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(rng, logits / temperature, axis=-1).astype(jnp.int32)


@partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "sampling"))
def _generate(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    ids: jax.Array,
    prefix_mask: jax.Array,
    segment_ids: jax.Array,
    rng: jax.Array,
    temperature: jax.Array,
    top_k: jax.Array,
    stop: jax.Array,
    *,
    max_new_tokens: int,
    sampling: bool,
) -> jax.Array:
    model = nnx.merge(graphdef, state)
    logits, cache = model.prefill(ids, prefix_mask, segment_ids, ids.shape[1] + max_new_tokens)
    rng, key = jax.random.split(rng)
    token = _sample(logits, key, sampling, temperature, top_k)
    out = jnp.full((ids.shape[0], max_new_tokens), stop, jnp.int32).at[:, 0].set(token)

    def cond(carry):
        i, _, _, done, _, _ = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        i, token, cache, done, out, rng = carry
        logits, cache = model.step(token, cache)
        rng, key = jax.random.split(rng)
        token = jnp.where(done, stop, _sample(logits, key, sampling, temperature, top_k))
        out = jax.lax.dynamic_update_slice_in_dim(out, token[:, None], i, axis=1)
        return i + 1, token, cache, done | (token == stop), out, rng

    carry = (jnp.asarray(1, jnp.int32), token, cache, token == stop, out, rng)
    return jax.lax.while_loop(cond, body, carry)[4]


def generate(
    model: nnx.Module,
    prompt_ids: Sequence[Sequence[int]] | np.ndarray | jax.Array,
    max_new_tokens: int,
    *,
    prefix_len: int | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    stop_token: int | None = None,
    rng: jax.Array | int | None = None,
) -> np.ndarray:
    """Generate ``max_new_tokens`` per prompt ([B, max_new_tokens] int32; greedy at temperature 0).

    Prompts may differ in length (they are left-padded). The whole prompt is read as a
    bidirectional prefix unless ``prefix_len`` says otherwise. After a row emits ``stop_token``
    the rest of its row is ``stop_token``; the loop ends early once every row has stopped.
    The loop runs in one compiled call: no host round trip per token.
    """
    if max_new_tokens < 1:
        raise BirdieError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0.0:
        raise BirdieError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= model.vocab_size:
        raise BirdieError(f"top_k must lie in [1, {model.vocab_size}], got {top_k}")
    ids, prefix_mask, segment_ids = pack_prompts(prompt_ids, prefix_len)
    if rng is None or isinstance(rng, int):
        rng = jax.random.key(rng or 0)
    graphdef, state = nnx.split(model)
    out = _generate(
        graphdef,
        state,
        ids,
        prefix_mask,
        segment_ids,
        rng,
        jnp.float32(max(temperature, 1e-6)),
        jnp.int32(model.vocab_size if top_k is None else top_k),
        jnp.int32(-1 if stop_token is None else stop_token),
        max_new_tokens=max_new_tokens,
        sampling=temperature > 0.0,
    )
    return np.asarray(out)
