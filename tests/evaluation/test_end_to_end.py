"""Train a tiny model for a few steps, evaluate it from the CLI, and run a tiny experiment."""

import json

import pytest
import yaml

from birdie_ssm.cli import main
from birdie_ssm.evaluation.experiment import load_spec, run_configs
from birdie_ssm.train.trainer import Trainer
from tests.conftest import TINY, tiny_config

STEPS = ["train.steps=4", "train.checkpoint_every=4", "train.log_every=2"]
TASK = ["--set", "pairs=[4]", "--set", "samples=3", "--set", "batch_size=4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_config(*STEPS), path, progress=False)
    trainer.fit()
    trainer.close()
    return path


def test_eval_writes_a_result_and_prints_a_table(run_dir, capsys):
    assert main(["eval", "mqar", "--checkpoint", str(run_dir), *TASK]) == 0
    out = capsys.readouterr().out
    assert "pairs  accuracy  n" in out and "format prefix" in out
    result = json.loads((run_dir / "eval" / "mqar.json").read_text())
    assert result["format"] == "prefix" and result["step"] == 4
    assert result["points"][0]["n"] == 3 and 0.0 <= result["headline"] <= 1.0


def test_generate_prints_a_continuation(run_dir, capsys):
    argv = ["generate", "--checkpoint", str(run_dir), "--prompt", "Ada ", "--max-new-tokens", "5"]
    assert main(argv) == 0
    capsys.readouterr()  # a 4-step model may stop at once: only the exit status is checked


def _setting(assignment: str) -> tuple[str, object]:
    key, _, value = assignment.partition("=")
    return key, yaml.safe_load(value)


def test_tiny_experiment_trains_evaluates_and_resumes(tmp_path, capsys):
    shared = dict(_setting(a) for a in [*TINY, *STEPS])
    spec = {
        "name": "tiny",
        "shared": shared,
        "runs": [
            {"name": "ntp", "set": {"objectives.mixture": [{"name": "next_token"}]}},
            {"name": "mixed", "set": {}},  # the default mixture, prompted as a prefix
        ],
        "tasks": {"mqar": {"pairs": [4], "samples": 3, "batch_size": 4}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    # Run 'ntp' was interrupted after its first checkpoint: the experiment resumes it.
    config = run_configs(load_spec(path), path, [])["ntp"]
    partial = Trainer(config, out / "ntp", progress=False)
    partial.train_one()
    partial.save()
    partial.close()
    assert main(["experiment", str(path), "--output", str(out)]) == 0
    assert json.loads((out / "ntp" / "train_done.json").read_text())["resumed"]
    table = (out / "results.md").read_text()
    assert "| ntp |" in table and "| mixed |" in table and "(causal)" in table
    assert "(prefix)" in table and (out / "plots" / "mqar.png").is_file()
    capsys.readouterr()
    # A second call finds both runs trained and evaluated: it only rewrites the summary.
    assert main(["experiment", str(path), "--output", str(out)]) == 0
    assert "mqar:" not in capsys.readouterr().out
    assert (out / "results.md").read_text() == table
