"""Two processes joined by ``jax.distributed`` (one CPU device each, gloo collectives) train one
run: each host packs its own rows of every global batch from its own documents
(``pipeline.Pipeline``), the hosts agree on every evaluation, and the checkpoint holds both
hosts' pipeline states (``pipeline.hosts``), so the run resumes on two hosts."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # two jax.distributed processes

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
import jax
process, count, port, run_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if count > 1:
    jax.distributed.initialize(f"localhost:{port}", num_processes=count, process_id=process)
from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

cfg = tiny_config("train.steps=4", "train.log_every=1", "eval.schedule=every", "eval.every=2",
                  "data.batch_size=4", f"train.distributed={count > 1}")
trainer = Trainer(cfg, run_dir)
final = trainer.fit()
trainer.close()
out = {"final": final, "devices": jax.device_count(), "local": jax.local_device_count()}
if count > 1:  # both hosts' pipeline states are in the checkpoint; each resumes its own
    resumed = Trainer(cfg, run_dir, resume=True)
    out["resumed"] = resumed.birdie.pipeline.source.state_dict()
    resumed.close()
if process == 0:
    records = read_metrics(f"{run_dir}/metrics.jsonl")
    out["train"] = [r["loss"] for r in records if r["kind"] == "train"]
    out["mixtures"] = [r["mixture"] for r in records if r["kind"] == "eval"]
print("RESULT" + json.dumps(out), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(process: int, count: int, port: int, run_dir: Path, devices: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(process), str(count), str(port), str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_two_processes_train_one_run_each_from_its_own_documents(tmp_path):
    port = _free_port()
    hosts = [_start(i, 2, port, tmp_path / "two_hosts", devices=1) for i in range(2)]
    one = _result(_start(0, 1, port, tmp_path / "one_host", devices=2))
    first, second = (_result(p) for p in hosts)
    assert (one["devices"], one["local"]) == (2, 2)
    assert (first["devices"], first["local"]) == (2, 1)
    assert len(first["train"]) == len(one["train"]) == 4
    assert np.isfinite(first["train"]).all()
    for arm in one["final"]:
        assert second["final"][arm] == first["final"][arm]  # every host agrees
    # Each host resumed its own stream: the hosts' states differ, at the same batch.
    a, b = first["resumed"], second["resumed"]
    assert a["taken"] == b["taken"] and a["streams"] != b["streams"]
