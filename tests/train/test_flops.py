"""FLOP counting (train/flops.py) against a hand count, peaks, and mfu in metrics records."""

from __future__ import annotations

import itertools
import timeit

import numpy as np
import pytest

from birdie_ssm.config import load_config
from birdie_ssm.train import flops
from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

W, V, T = 32, 64, 64  # width, vocab, sequence length


def _mlp_block() -> int:
    # mlp_norm scale, gate_up W x 2*3W, down 3W x W
    return W + W * 6 * W + 3 * W * W


def test_flops_match_a_hand_count_for_a_tiny_gated_model():
    model = load_config(None, ["model.width=32", "model.depth=2"]).model
    gated = W + W * 4 * W + W + W * W  # norm scale, proj W x 4D, f_bias D, out D x W (D = W)
    non_embedding = 2 * (gated + _mlp_block()) + W  # + final norm
    assert non_embedding == 28_896
    count = flops.config_flops_per_token(model, V, T)
    assert count.params == 6 * 28_896
    assert count.readout == 6 * V * W  # the tied output projection
    assert count.recurrence == 2 * 6 * W  # multiply + add per channel, x3 with backward
    assert count.attention == 0
    assert count.total == 173_376 + 12_288 + 384


def test_flops_of_a_hybrid_count_attention_over_the_row():
    model = load_config(
        None, ["model.width=32", "model.depth=2", "model.block_pattern=RA", "model.mixer=rglru"]
    ).model
    # rglru: norm, proj W x 2D, conv 4 x D + bias D, gates D x 2D + bias 2D, lam D, out D x W
    rglru = W + W * 2 * W + 4 * W + W + W * 2 * W + 2 * W + W + W * W
    attention = W + W * 3 * W + W * W  # norm, qkv, out
    count = flops.config_flops_per_token(model, V, T)
    assert count.params == 6 * (rglru + attention + 2 * _mlp_block() + W)
    assert count.recurrence == 6 * W
    assert count.attention == 12 * W * T  # QK^T and PV: 2*T*W each forward, x3
    assert count.total == count.params + 6 * V * W + 6 * W + 12 * W * T


def test_mfu_from_a_token_rate():
    meter = flops.MFU(flops_per_token=1e6, peak=1e12, source="test")
    assert meter(2e5) == pytest.approx(0.2)
    assert flops.MFU(1e6, None, "unknown GPU")(2e5) is None


def test_measured_matmul_rate_is_the_known_flops_over_the_time(monkeypatch):
    clock = itertools.count(step=1e-3)  # each perf_counter() call is 1 ms after the last
    monkeypatch.setattr(flops.time, "perf_counter", lambda: next(clock))
    rate = flops.matmul_flops("float32", 64, seconds=0.0)
    # one timed call between two clock reads: MATMULS_PER_CALL products of 2 * 64^3 FLOPs
    assert rate == pytest.approx(flops.MATMULS_PER_CALL * 2 * 64**3 / 1e-3)


def test_cpu_peak_is_a_measured_matmul_rate_cached_per_process():
    rate = flops.cpu_matmul_flops()
    assert flops.cpu_matmul_flops() == rate  # measured once
    # Against an independent timing (NumPy's matmul of the same shape, best of several): the
    # two libraries differ, and the machine is shared, but not by 20x either way.
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    numpy_rate = 2 * 512**3 / (min(timeit.repeat(lambda: a @ a, number=4, repeat=5)) / 4)
    assert 1 / 20 < flops.matmul_flops("float32", 512) / numpy_rate < 20
    peak, source = flops.peak_flops("float32")
    assert peak == rate and "measured" in source


def test_gpu_peaks_come_from_the_table(monkeypatch):
    class Device:
        platform, device_kind = "gpu", "NVIDIA H100 80GB HBM3"

    monkeypatch.setattr(flops.jax, "devices", lambda *a: [Device(), Device()])
    assert flops.peak_flops("bfloat16")[0] == 2 * 989.4e12
    assert flops.peak_flops("float32")[0] == 2 * 494.7e12  # XLA's default precision: TF32
    Device.device_kind = "NVIDIA H100 PCIe"
    assert flops.peak_flops("bfloat16")[0] == 2 * 756e12
    Device.device_kind = "Some Future GPU"
    peak, source = flops.peak_flops("bfloat16")
    assert peak is None and "Some Future GPU" in source and "GPU_PEAK_FLOPS" in source


def test_mfu_appears_in_train_records(tmp_path):
    # train.steps=4, as in other modules' tiny runs: the session's compilation cache has the step
    trainer = Trainer(tiny_config("train.steps=4", "train.log_every=2"), tmp_path)
    trainer.fit()
    trainer.close()
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert train and all(0 < r["mfu"] < 1 for r in train)
    expected = trainer.mfu.flops_per_token * train[-1]["tokens_per_s"] / trainer.mfu.peak
    assert train[-1]["mfu"] == pytest.approx(expected)
