"""benchmarks/gpu.py off a GPU: its one-line refusal, and what it reads from train.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from tests.helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_bench():
    return load_benchmark("gpu")


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the refusal without a GPU")
def test_says_in_one_line_that_it_needs_a_gpu():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "birdie-ssm bench gpu needs a GPU, and JAX finds none on this machine"
    ]


@pytest.fixture(scope="module")
def train_output(gpu_bench):
    """benchmarks/train.py's real output for one preset, one step (trimmed sizes on a CPU)."""
    done = subprocess.run(
        gpu_bench.train_command("hawk-125m", 1), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow  # runs benchmarks/train.py
def test_reads_the_pipeline_ratio_and_mfu_from_train_py(gpu_bench, train_output):
    # bench gpu runs train.py on its presets and reads its lines: a change of wording there
    # that loses a figure fails here.
    assert set(gpu_bench.PRESETS) <= {p.stem for p in (ROOT / "configs" / "models").iterdir()}
    ratio = gpu_bench.pipeline_ratio(train_output)
    assert ratio is not None and 0 < ratio < 2
    theirs = re.search(r"pipeline ratio ([\d.]+)", train_output)
    assert theirs is not None and ratio == pytest.approx(float(theirs.group(1)), abs=0.006)
    assert "MFU" in gpu_bench.model_line(train_output)


def test_pipeline_ratio_and_model_line_need_their_lines(gpu_bench):
    assert gpu_bench.pipeline_ratio("train step alone 1 tok/s") is None
    assert gpu_bench.model_line("model 1 TFLOP/s") is None
