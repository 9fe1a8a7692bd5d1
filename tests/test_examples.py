"""The own-loop examples train a model that is not ours, printing losses per arm and mixtures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent)}
    # Rows of 64 tokens, 4 to a batch: a quarter of the examples' own 128 x 8 tokens per step.
    settings = ["eval.every=10", "data.seq_len=64", "data.batch_size=4"]
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--steps", "20",
         *[arg for s in settings for arg in ("--set", s)]],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def check_output(stdout: str) -> None:
    reported = [int(s) for s in re.findall(r"^step (\d+): loss", stdout, re.M)]
    assert reported == [0, 10, 20]
    losses = [
        dict(re.findall(r"(\w+)=([\d.]+)", line))
        for line in stdout.splitlines()
        if line.startswith("step ")
    ]
    assert set(losses[0]) == {
        "next_token", "prefix_lm", "copying", "selective_copying", "associative_recall",
        "task_format",
    }  # fmt: skip
    assert all(float(losses[-1][a]) < float(losses[0][a]) for a in losses[0])  # it learns
    mixtures = re.findall(r"^  mixture (.*)$", stdout, re.M)
    assert len(mixtures) == 3
    shares = [float(p) for p in re.findall(r"=([\d.]+)", mixtures[-1])]
    assert sum(shares) == pytest.approx(1.0, abs=0.01 * len(shares))  # printed to 2 places


def test_the_jax_example_trains_a_flax_transformer():
    check_output(run_example("own_loop_jax.py"))


@pytest.mark.torch
def test_the_torch_example_trains_a_pytorch_lm():
    pytest.importorskip("torch")
    check_output(run_example("own_loop_torch.py"))
