"""Per-position masks shared by every layer: segment resets and the reverse-scan boundaries."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SeqMasks(NamedTuple):
    """Masks of one packed batch, computed once per forward pass and read by every layer."""

    segment_ids: jax.Array  # [batch, length] int32; 0 = padding
    fwd_keep: jax.Array  # [batch, length] bool; False at a segment start (forward a forced to 0)
    rev_keep: jax.Array  # [batch, length] bool; True where t and t+1 lie in the same prefix


def make_masks(
    input_ids: jax.Array, prefix_mask: jax.Array | None, segment_ids: jax.Array | None
) -> SeqMasks:
    """Build SeqMasks; defaults are one segment per row and no prefix (fully causal)."""
    if segment_ids is None:
        segment_ids = jnp.ones(input_ids.shape, jnp.int32)
    if prefix_mask is None:
        prefix_mask = jnp.zeros(input_ids.shape, bool)
    segment_ids = segment_ids.astype(jnp.int32)
    prefix_mask = prefix_mask.astype(bool)
    same_as_prev = jnp.pad(segment_ids[:, 1:] == segment_ids[:, :-1], ((0, 0), (1, 0)))
    # The reverse scan computes h_t = a_t * h_{t+1} + b_t, so a_t must vanish unless t+1 belongs
    # to the same prefix as t: this blocks every target position and every other segment.
    same_as_next = jnp.pad(same_as_prev[:, 1:], ((0, 0), (0, 1)))
    prefix_next = jnp.pad(prefix_mask[:, 1:], ((0, 0), (0, 1)))
    rev_keep = prefix_mask & prefix_next & same_as_next
    return SeqMasks(segment_ids, same_as_prev, rev_keep)
