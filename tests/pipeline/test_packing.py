"""Packing invariants: loss only where targets are predicted, masks, segments, positions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from birdie_ssm.objectives import Example
from birdie_ssm.pipeline.packing import RowBuilder, stack_rows
from birdie_ssm.text.tokenizer import ByteTokenizer

SP = ByteTokenizer().specials


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 20)), min_size=1, max_size=8))
def test_row_invariants(lengths):
    row = RowBuilder(128, SP)
    placed = []
    for arm, (n_in, n_out) in enumerate(lengths):
        if n_in + n_out > row.budget():
            break
        rng = np.random.default_rng(arm)
        ex = Example(rng.integers(0, 256, n_in), rng.integers(0, 256, n_out))
        row.add(ex, arm)
        placed.append(ex)
    b = stack_rows([row])
    tokens, targets, loss = b.input_ids[0], b.target_ids[0], b.loss_mask[0]
    for seg, ex in enumerate(placed, start=1):
        at = b.segment_ids[0] == seg
        n_in, n_out = len(ex.input_ids), len(ex.target_ids)
        assert at.sum() == n_in + n_out + 2
        assert np.array_equal(b.positions[0][at], np.arange(at.sum()))
        assert np.array_equal(tokens[at], [*ex.input_ids, SP.sep, *ex.target_ids, SP.eod])
        assert b.prefix_mask[0][at].sum() == n_in + 1  # the input and the separator
        # Loss on positions that predict the target and eod: from the separator on.
        assert np.array_equal(targets[at][loss[at]], [*ex.target_ids, SP.eod])
        assert (b.arm_ids[0][at] == seg - 1).all()
    assert not (loss & b.prefix_mask[0] & (tokens != SP.sep)).any()
    pad = b.segment_ids[0] == 0
    assert (tokens[pad] == SP.pad).all() and not loss[pad].any() and (b.arm_ids[0][pad] == -1).all()
