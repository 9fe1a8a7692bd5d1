"""Per-position context shared by every layer: segment resets, reverse-scan bounds, prefix runs.

``make_context`` builds a ``SeqContext`` once per forward pass; each mixer reads what it needs
(recurrent mixers the keep masks, attention the positions and prefix runs). What a mixer does not
read costs nothing under ``jit``. ``StepContext`` is its one-token counterpart during decoding.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SeqContext(NamedTuple):
    """Masks of one packed batch, computed once per forward pass and read by every layer."""

    segment_ids: jax.Array  # [batch, length] int32; 0 = padding
    fwd_keep: jax.Array  # [batch, length] bool; False at a segment start (forward a forced to 0)
    rev_keep: jax.Array  # [batch, length] bool; True where t and t+1 lie in the same prefix
    positions: jax.Array  # [batch, length] int32; position inside the segment (restarts at 0)
    runs: jax.Array  # [batch, length] int32; id of the contiguous prefix stretch, -1 outside


class StepContext(NamedTuple):
    """What a mixer may read when decoding one token per row."""

    index: jax.Array  # scalar int32: the cache slot of this token
    positions: jax.Array  # [batch] int32: its position inside its segment
    attend: jax.Array  # [batch, slots] bool: cache slots of the same segment (itself included)


def make_context(
    shape: tuple[int, int], prefix_mask: jax.Array | None, segment_ids: jax.Array | None
) -> SeqContext:
    """Build the SeqContext; defaults are one segment per row and no prefix (fully causal)."""
    if segment_ids is None:
        segment_ids = jnp.ones(shape, jnp.int32)
    if prefix_mask is None:
        prefix_mask = jnp.zeros(shape, bool)
    segment_ids = segment_ids.astype(jnp.int32)
    prefix_mask = prefix_mask.astype(bool)
    same_as_prev = jnp.pad(segment_ids[:, 1:] == segment_ids[:, :-1], ((0, 0), (1, 0)))
    # The reverse scan computes h_t = a_t * h_{t+1} + b_t, so a_t must vanish unless t+1 belongs
    # to the same prefix as t: this blocks every target position and every other segment.
    same_as_next = jnp.pad(same_as_prev[:, 1:], ((0, 0), (0, 1)))
    prefix_next = jnp.pad(prefix_mask[:, 1:], ((0, 0), (0, 1)))
    rev_keep = prefix_mask & prefix_next & same_as_next
    idx = jnp.arange(shape[1], dtype=jnp.int32)
    positions = idx - jax.lax.cummax(jnp.where(same_as_prev, 0, idx), axis=1)
    # Label contiguous prefix stretches, so a prefix never sees past a target in between.
    prev_prefix = jnp.pad(prefix_mask[:, :-1], ((0, 0), (1, 0)))
    run = jnp.cumsum(prefix_mask & ~(prev_prefix & same_as_prev), axis=1)
    runs = jnp.where(prefix_mask, run, -1)
    return SeqContext(segment_ids, same_as_prev, rev_keep, positions, runs)
