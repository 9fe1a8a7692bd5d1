"""benchmarks/train.py: its figures, its report (as benchmarks/gpu.py reads it), bad input."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def train():
    return load_benchmark("train")


def _bench(train, **changes):
    fields = dict(
        name="gated-125m", params=124_000_000, batch=16, seq_len=2048, dtype="bfloat16",
        steps=10, step_tps=400_000.0, pipeline_tps=1_000_000.0, trainer_tps=380_000.0,
        flops_per_token=750e6, spec_peak=989.4e12, spec_source="spec", matmul_peak=790e12,
        matmul_dtype="bfloat16",
    )  # fmt: skip
    return train.TrainBench(**{**fields, **changes})


def test_mfu_against_both_peaks_and_the_pipeline_ratio(train):
    bench = _bench(train)
    assert bench.model_flops == pytest.approx(750e6 * 400_000)
    assert bench.mfu_spec == pytest.approx(750e6 * 400_000 / 989.4e12)
    assert bench.mfu_matmul == pytest.approx(750e6 * 400_000 / 790e12)
    assert bench.pipeline_ratio == pytest.approx(0.95)
    assert _bench(train, spec_peak=None).mfu_spec is None


def test_report_gives_both_mfus_and_bench_gpu_reads_its_ratio(train):
    bench = _bench(train)
    text = train.report(bench)
    assert f"{bench.mfu_spec:.1%}" in text and f"{bench.mfu_matmul:.2f}" in text
    gpu = load_benchmark("gpu")
    assert gpu.pipeline_ratio(text) == pytest.approx(bench.pipeline_ratio, abs=1e-3)
    unknown = train.report(_bench(train, spec_peak=None, spec_source="GPU 'X' unknown"))
    assert "GPU 'X' unknown" in unknown and f"{bench.mfu_matmul:.2f}" in unknown


def test_zero_steps_is_one_line(train, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["train.py", "--steps", "0"])
    with pytest.raises(SystemExit) as exit_info:
        train.main()
    message = str(exit_info.value.code)
    assert message == "error: --steps must be at least 1 (timed steps per measurement), got 0"
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        train.measure(None, 0)


def test_unknown_preset_names_the_known_ones(train):
    with pytest.raises(ValueError, match=r"unknown preset 'gated-12m' \(known: .*gated-125m"):
        train.measure("gated-12m", 1)
