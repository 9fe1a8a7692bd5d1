"""The same config on 1 and on 4 (forced CPU) devices trains to the same losses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, tempfile
from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

out = {}
for mesh in sys.argv[1:]:
    data, fsdp = mesh.split("x")
    cfg = tiny_config("train.steps=8", "train.log_every=1", f"train.mesh_data={data}",
                      f"train.mesh_fsdp={fsdp}", "data.batch_size=8")
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(cfg, d)
        final = trainer.fit()
        trainer.close()
        losses = [r["loss"] for r in read_metrics(f"{d}/metrics.jsonl") if r["kind"] == "train"]
    out[mesh] = {"train": losses, "val": final}
print("RESULT" + json.dumps(out))
"""


def _run(devices: int, *meshes: str) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *meshes],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.fixture(scope="module")
def results():
    one = _run(1, "1x1")
    four = _run(4, "4x1", "2x2")
    return {**one, **four}


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
@pytest.mark.parametrize("mesh", ["4x1", "2x2"])
def test_same_losses_on_one_and_four_devices(results, mesh):
    ref, got = results["1x1"], results[mesh]
    np.testing.assert_allclose(got["train"], ref["train"], rtol=2e-4)
    for arm, loss in ref["val"].items():
        np.testing.assert_allclose(got["val"][arm], loss, rtol=2e-4)
