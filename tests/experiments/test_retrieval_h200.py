"""configs/experiments/retrieval_h200.yaml: the scale it states holds, and it runs end to end
(shrunk to a toy size on CPU; the GPU run itself is not measured here)."""

import math
from pathlib import Path

import jax
import pytest
import yaml
from flax import nnx

from birdie_ssm.experiments import run_experiment, summary
from birdie_ssm.experiments.spec import finetune_config, load_spec, run_configs
from birdie_ssm.models import build_model
from birdie_ssm.text import make_tokenizer, padded_vocab_size

FILE = Path(__file__).parents[2] / "configs" / "experiments" / "retrieval_h200.yaml"
RUNS = {"ssm_next_token", "ssm_birdie", "ssm_birdie_causal", "ssm_birdie_uniform",
        "transformer_next_token", "ssm_task_only"}  # fmt: skip
TOY_RUNS = {"ssm_birdie", "ssm_birdie_uniform", "ssm_task_only"}


def _params(config) -> int:
    vocab = padded_vocab_size(make_tokenizer(config.data))
    model = nnx.eval_shape(lambda: build_model(config.model, vocab, nnx.Rngs(0)))
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_the_file_is_at_the_scale_it_states():
    spec = load_spec(FILE)
    configs = run_configs(spec, FILE, [])
    assert {r.name for r in spec.runs} == RUNS
    assert not next(r for r in spec.runs if r.name == "ssm_task_only").pretrain
    tuned = {r.name: finetune_config(spec, FILE, r, configs.get(r.name), 0) for r in spec.runs}
    ft_tokens = spec.finetune.steps * spec.finetune.batch_size * spec.finetune.seq_len
    for name, config in configs.items():
        tokens = config.train.steps * config.data.batch_size * config.data.seq_len
        assert _params(config) >= 20e6 and 512 <= config.data.seq_len <= 1024
        assert tokens >= 50e6 and tokens >= 4 * ft_tokens, name
    assert tuned["ssm_task_only"].train.steps == 768 + 300
    # Books beyond the fine-tuning range are asked.
    tuned_sizes = spec.finetune.mixture[0]["params"]["settings"]["book_sizes"]
    assert max(spec.tasks["phonebook"]["book_sizes"]) > max(tuned_sizes)


@pytest.mark.slow  # a whole experiment
def test_the_experiment_runs_end_to_end_at_a_toy_size(tmp_path, capsys, monkeypatch):
    # Each stage's own training plots (train/report.py, tested there) cost a third of the time.
    monkeypatch.setattr(summary, "_run_reports", lambda dirs: [])
    raw = yaml.safe_load(FILE.read_text())
    # Three of the six runs, to keep the test short: the Birdie run (every objective of the
    # family, the controller), the same family under fixed weights, and the control without
    # pretraining; the other three differ from these only in settings the test above builds.
    raw["runs"] = [r for r in raw["runs"] if r["name"] in TOY_RUNS]
    # The fine-tuning stage and the tasks shrunk beside the --set overrides (which reach the
    # pretraining stage, and the control's one stage).
    raw["finetune"].update(steps=2, batch_size=2, curve_every=2)
    raw["finetune"]["curve"]["phonebook"].update(samples=1, batch_size=2, book_sizes=[4])
    raw["tasks"]["phonebook"].update(samples=1, batch_size=2, book_sizes=[4, 48])
    path = tmp_path / "retrieval_h200.yaml"
    path.write_text(yaml.safe_dump(raw))
    overrides = ["model.width=16", "model.depth=1", "model.dtype=float32",
                 "model.mixers={gated: {state_expansion: 1}, attention: {num_heads: 2}}",
                 "data.seq_len=512", "data.batch_size=2", "data.workers=0", "train.steps=2",
                 "train.checkpoint_every=2", "train.warmup_steps=1"]  # fmt: skip
    written = run_experiment(path, overrides, output=tmp_path / "out")
    table = (tmp_path / "out" / "results.md").read_text()
    assert all(f"| {name} |" in table for name in TOY_RUNS)
    assert tmp_path / "out" / "plots" / "curve-phonebook.png" in written
    capsys.readouterr()
