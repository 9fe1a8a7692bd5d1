"""The public Birdie class: a loop's batches, reports, exact resume, layouts, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

from birdie_ssm.birdie import Birdie, birdie_rl_fields, causal_lm_fields
from birdie_ssm.errors import BirdieError

SMALL = [
    "data.seq_len=64",
    "data.batch_size=4",
    "data.val_batches_per_arm=1",
    "data.workers=0",
    "objectives.mixture=[{name: next_token}, {name: prefix_lm}, "
    "{name: infilling, params: {mask_rate: [0.15, 0.5], mean_span: 3}}]",
    "controller.name=ucb",
    "eval.schedule=every",
    "eval.every=3",
    "train.steps=12",
]


def make(*overrides: str, **kwargs) -> Birdie:
    return Birdie.from_config(None, [*SMALL, *overrides], **kwargs)


def fake_losses(birdie: Birdie, batches: list) -> dict[str, float]:
    """Validation losses that depend on what was served: falling with each arm's tokens."""
    tokens = np.zeros(len(birdie.arm_names))
    for b in batches:
        tokens += np.bincount(b.arm_ids[b.loss_mask], minlength=len(tokens))
    return {n: 5.0 / (1.0 + 1e-3 * t) for n, t in zip(birdie.arm_names, tokens, strict=True)}


def run_loop(birdie: Birdie, steps: range, served: list) -> list[np.ndarray]:
    """Draw a batch per step; report at the evaluation steps; the mixture after each step."""
    mixtures = []
    for step in steps:
        if step > 0:
            served.append(birdie.next_batch())
        if birdie.should_evaluate(step):
            birdie.report(step, fake_losses(birdie, served))
        mixtures.append(birdie.mixture.copy())
    return mixtures


def test_a_loop_reports_and_the_mixture_follows_the_controller():
    with make() as birdie:
        served: list = []
        mixtures = run_loop(birdie, range(13), served)
        assert birdie.eval_at == [0, 3, 6, 9, 12]
        assert [r["step"] for r in birdie.history] == [0, 3, 6, 9, 12]
        assert not np.allclose(mixtures[0], mixtures[-1])  # the controller moved it
        first, last = birdie.history[1], birdie.history[-1]
        assert set(birdie.rewards) == set(birdie.arm_names) and "reward" in last
        # The realised mixture credited at step 3: token shares of the three batches served.
        tokens = sum(np.bincount(b.arm_ids[b.loss_mask], minlength=4) for b in served[:3])
        np.testing.assert_allclose(list(first["realised_mixture"].values()), tokens / tokens.sum())
        assert birdie.realised_mixture() is None  # a new interval after each report


def test_state_dict_resumes_batches_and_mixtures_exactly():
    served: list = []
    with make() as whole:
        expected = run_loop(whole, range(13), served)
        expected_batches = [b.as_dict() for b in served]
    first: list = []
    with make() as a:
        before = run_loop(a, range(5), first)
        state = json.loads(json.dumps(a.state_dict()))  # it travels as JSON in checkpoints
    with make() as b:
        b.load_state_dict(state)
        after = run_loop(b, range(5, 13), first)
    for got, want in zip(before + after, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(first, expected_batches, strict=True):
        for key, value in want.items():
            np.testing.assert_array_equal(got.as_dict()[key], value)
    assert b.history == json.loads(json.dumps(whole.history))


def test_layouts_for_causal_lms_and_birdie_rl():
    with make() as birdie:
        batch = birdie.next_batch()
    hf, rl = causal_lm_fields(batch), birdie_rl_fields(batch)
    for row in range(batch.input_ids.shape[0]):
        for t in range(batch.input_ids.shape[1]):
            # A position predicting a target token carries it; Hugging Face shifts by one.
            want = batch.target_ids[row, t] if batch.loss_mask[row, t] else -100
            assert rl["label_ids"][row, t] == want
            if t + 1 < batch.input_ids.shape[1]:
                assert hf["labels"][row, t + 1] == want
                if want != -100:  # the label is the next input token of the same example
                    assert want == batch.input_ids[row, t + 1]
            seg = batch.segment_ids[row, t]
            code = 0 if seg == 0 else (1 if batch.prefix_mask[row, t] else 3)
            assert rl["attention_mask"][row, t] == code
            assert hf["attention_mask"][row, t] == (seg > 0)
    assert (hf["labels"][:, 0] == -100).all()
    assert (hf["labels"] != -100).sum() == batch.loss_mask.sum() - batch.loss_mask[:, -1].sum()


def test_ranks_see_the_same_losses_and_mixture():
    """Two ranks in threads, all_reduce summing through a barrier: the same mixtures, and the
    realised mixture of both ranks' rows."""
    barrier, slots = threading.Barrier(2), [None, None]

    def all_reduce_for(rank):
        def all_reduce(values):
            slots[rank] = np.asarray(values)
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()
            return total

        return all_reduce

    results: list = [None, None]

    def rank_loop(rank):
        with make(rank=rank, world_size=2, all_reduce=all_reduce_for(rank)) as birdie:
            served: list = []
            losses = [{n: 3.0 + rank + 0.1 * step for n in birdie.arm_names} for step in (0, 3, 6)]
            for step, loss in zip((0, 3, 6), losses, strict=True):
                while len(served) < step:
                    served.append(birdie.next_batch())
                birdie.report(step, loss)
            results[rank] = (birdie.history, served)

    threads = [threading.Thread(target=rank_loop, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    (h0, s0), (h1, s1) = results
    assert [r["mixture"] for r in h0] == [r["mixture"] for r in h1]
    assert h0[1]["val_loss"] == pytest.approx({n: 3.8 for n in h0[1]["val_loss"]})  # rank mean
    assert s0[0].input_ids.shape[0] == 2  # each rank's half of the global batch
    tokens = sum(np.bincount(b.arm_ids[b.loss_mask], minlength=4) for b in s0[3:6] + s1[3:6])
    np.testing.assert_allclose(list(h0[2]["realised_mixture"].values()), tokens / tokens.sum())


def test_bad_reports_say_what_is_wrong_and_change_nothing():
    with make() as birdie:
        names = birdie.arm_names
        good = dict.fromkeys(names, 3.0)
        with pytest.raises(BirdieError, match="no loss for arm 'prefix_lm'"):
            birdie.report(0, {"next_token": 3.0})
        with pytest.raises(BirdieError, match="unknown arm 'nope'"):
            birdie.report(0, {**good, "nope": 1.0})
        with pytest.raises(BirdieError, match="must map arm names"):
            birdie.report(0, [3.0] * len(names))
        with pytest.raises(BirdieError, match="'next_token' is 'x', not a number"):
            birdie.report(0, {**good, "next_token": "x"})
        birdie.report(0, good)
        for _ in range(3):
            birdie.next_batch()
        with pytest.raises(BirdieError, match="step 0 comes after step 0"):
            birdie.report(0, good)
        state = json.dumps(birdie.controller.state_dict())
        mixture = birdie.mixture.copy()
        with pytest.warns(RuntimeWarning, match="non-finite validation losses at step 3"):
            birdie.report(3, {**good, "copying" if "copying" in names else names[0]: np.nan})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once
            birdie.report(4, {**good, names[1]: np.inf})
        assert json.dumps(birdie.controller.state_dict()) == state
        np.testing.assert_array_equal(birdie.mixture, mixture)
        assert birdie.realised_mixture() is not None  # the interval goes on to the next report
        with pytest.raises(BirdieError, match="step 2 comes after step 4"):
            birdie.report(2, good)
    for call in (birdie.next_batch, birdie.state_dict, birdie.validation_batches):
        with pytest.raises(BirdieError, match="closed"):
            call()
    with pytest.raises(BirdieError, match="closed"):
        birdie.report(5, good)


def test_a_state_from_other_settings_is_refused_naming_them():
    with make() as a:
        state = a.state_dict()
    with make("data.seq_len=96") as b:
        before = json.dumps(b.state_dict())
        with pytest.raises(BirdieError, match=r"data\.seq_len: 64 in the state, 96 here"):
            b.load_state_dict(state)
        assert json.dumps(b.state_dict()) == before


def test_a_state_resumes_with_other_speed_settings(tmp_path):
    # data.workers, prefetch and the cache's place change how batches are made, not which.
    with make() as a:
        state = a.state_dict()
        after = a.next_batch().as_dict()
    with make("data.workers=1", "data.prefetch=3", f"data.cache_dir={tmp_path}") as b:
        b.load_state_dict(state)
        for key, value in b.next_batch().as_dict().items():
            np.testing.assert_array_equal(value, after[key])


def test_bad_construction_is_one_line():
    with pytest.raises(BirdieError, match="needs all_reduce"):
        make(world_size=2)
    with pytest.raises(BirdieError, match="rank 2 of world_size 2"):
        make(rank=2, world_size=2, all_reduce=lambda x: x)
    with pytest.raises(BirdieError, match="unknown config section 'modle'"):
        Birdie.from_config({"modle": {}})
    with pytest.raises(BirdieError, match=r"^data\.seq_len: "):
        make("data.seq_len=3")


NO_JAX = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jax", "jaxlib", "flax", "optax"):
            raise ImportError(f"{name} is blocked")

sys.meta_path.insert(0, Block())
from birdie_ssm import Birdie

birdie = Birdie.from_config(None, SMALL, steps=6)
birdie.report(0, dict.fromkeys(birdie.arm_names, 3.0))
for step in range(1, 7):
    birdie.next_batch()
    if birdie.should_evaluate(step):
        birdie.report(step, dict.fromkeys(birdie.arm_names, 3.0 - 0.1 * step))
state = birdie.state_dict()
birdie.close()
print("trained", len(birdie.history), sorted(m for m in sys.modules if m.startswith("jax")))
"""


def test_a_loop_runs_without_importing_jax_flax_or_optax():
    code = f"SMALL = {SMALL!r}\n" + NO_JAX
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["trained", "3", "[]"]
