"""benchmarks/gpu.py off a GPU: its one-line refusal, and the pieces it hands to train.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
import yaml

from birdie_ssm.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.mark.parametrize("preset", ["gated-125m", "hawk-125m", "griffin-125m", "transformer-125m"])
def test_presets_reach_train_py_as_overrides_of_the_quickstart(gpu_bench, preset):
    config = load_config(None, gpu_bench.preset_overrides(preset))
    raw = yaml.safe_load((ROOT / "configs" / "models" / f"{preset}.yaml").read_text())
    preset_model = load_config(ROOT / "configs" / "models" / f"{preset}.yaml").model
    for key in raw["model"]:
        assert getattr(config.model, key) == getattr(preset_model, key), key
    assert (config.data.batch_size, config.data.seq_len) == (16, 2048)
    assert (config.model.dtype, config.model.vocab_size) == ("bfloat16", 32768)


def test_pipeline_ratio_reads_train_py_lines(gpu_bench):
    output = (
        "  train step alone          450,000 tok/s     72.8 ms/step\n"
        "  pipeline alone            158,000 tok/s    207.4 ms/batch\n"
        "  trainer (both)            142,000 tok/s    230.8 ms/step\n"
    )
    assert gpu_bench.pipeline_ratio(output) == pytest.approx(142 / 450)
    assert gpu_bench.pipeline_ratio("train step alone 1 tok/s") is None
