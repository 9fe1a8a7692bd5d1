"""Two processes joined by ``jax.distributed`` (CPU, gloo) read one file corpus: each reads about
half the documents one process reads, never the other's, packs only its own rows, and the rows
together form the global batch; the gathered state gives each host its own stream back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.test_multihost import _free_port

ROOT = Path(__file__).resolve().parents[2]
BATCHES = 6

SCRIPT = """
import json, re, sys
import jax
import numpy as np
process, count, port, corpus, cache = sys.argv[1:6]
process, count = int(process), int(count)
if count > 1:
    jax.distributed.initialize(f"localhost:{port}", num_processes=count, process_id=process)
from jax.experimental import multihost_utils
from birdie_ssm.config import Config
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline import open_pipeline
from birdie_ssm.text import make_tokenizer
from birdie_ssm.text.corpus import make_source

config = Config.model_validate({"data": {"corpus": "files", "files": [corpus], "cache_dir": cache,
    "seq_len": 256, "batch_size": 4, "workers": 0, "streams": 2},
    "objectives": {"mixture": [{"name": "next_token"}]}})
tok = make_tokenizer(config.data)
arms = expand_arms(config.objectives.mixture, tok.specials)
pipe = open_pipeline(config.data, make_source(config.data), tok, arms, np.ones(1),
                     process_index=process, process_count=count)
batches = [pipe.next_batch() for _ in range(BATCHES)]
local = pipe.source if count > 1 else pipe
read = sum(sum(s["documents"]["cursors"]) for s in local.state_dict()["streams"])
text = "".join(tok.decode(b.input_ids.ravel()) for b in batches)
ids = sorted({int(m) for m in re.findall(r"doc (\\d+):", text)})
out = {"read": read, "ids": ids, "rows": [b.input_ids.shape[0] for b in batches]}
if count > 1:
    glob = multihost_utils.process_allgather(batches[-1].input_ids, tiled=True)
    out["global"] = list(glob.shape)
    out["mine"] = bool((glob[process * 2:(process + 1) * 2] == batches[-1].input_ids).all())
    state = pipe.state_dict()  # every host's, gathered
    again = open_pipeline(config.data, make_source(config.data), tok, arms, np.ones(1),
                          process_index=process, process_count=count)
    again.load_state_dict(state)
    out["resumed"] = bool((again.next_batch().input_ids == pipe.next_batch().input_ids).all())
print("RESULT" + json.dumps(out), flush=True)
""".replace("BATCHES", str(BATCHES))


def _run(process, count, port, corpus, cache):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(process), str(count), str(port), corpus, cache],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip


def _result(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(next(x for x in out.splitlines() if x.startswith("RESULT"))[6:])


@pytest.mark.slow
def test_two_hosts_read_disjoint_halves_and_form_one_global_batch(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    docs = [f"doc {i}: " + "some words of text. " * (3 + i % 5) for i in range(400)]
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    cache = str(tmp_path / "cache")
    port = _free_port()
    two = [_run(i, 2, port, str(corpus), cache) for i in range(2)]
    first, second = (_result(p) for p in two)
    one = _result(_run(0, 1, port, str(corpus), cache))
    assert first["rows"] == second["rows"] == [2] * BATCHES and one["rows"] == [4] * BATCHES
    for host in (first, second):
        assert host["read"] <= 0.6 * one["read"], (host["read"], one["read"])
        assert host["global"] == [4, 256] and host["mine"] and host["resumed"]
    assert first["ids"] and second["ids"] and not set(first["ids"]) & set(second["ids"])
