"""Train a tiny model for a few steps, evaluate it from the CLI, and run a tiny experiment."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from birdie_ssm.cli import main
from birdie_ssm.evaluation import runner
from birdie_ssm.evaluation.prompts import objective_classes
from birdie_ssm.evaluation.runner import EvalContext
from birdie_ssm.experiments import load_spec, run_configs
from birdie_ssm.tasks import get_task
from birdie_ssm.text.tokenizer import ByteTokenizer
from birdie_ssm.train.trainer import Trainer
from tests.helpers import TINY, tiny_config

STEPS = ["train.steps=4", "train.checkpoint_every=2", "train.log_every=2"]
TASK = ["--set", "pairs=[4]", "--set", "samples=3", "--set", "batch_size=4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    configured = "eval.tasks={mqar: {pairs: [4], samples: 3, batch_size: 4}}"
    trainer = Trainer(tiny_config(*STEPS, configured), path, progress=False)
    trainer.fit()
    trainer.close()
    return path


def _written(out: str) -> Path:
    """The result file the CLI says it wrote (the last one)."""
    return Path(re.findall(r"^written to (.+)$", out, re.M)[-1])


def _greedy(ctx, context, steps):
    """``context`` in the prefix layout ([paradigm, context, sep]) decoded greedily here, by
    full forward passes one token at a time, up to ``steps`` tokens or the end token."""
    specials = ctx.tokenizer.specials
    paradigm = specials.paradigm(objective_classes(ctx.config).index("prefix_lm"))
    ids = [paradigm, *context, specials.sep]
    prompt_len, out = len(ids), []
    for _ in range(steps):
        x = np.asarray(ids, np.int32)[None]
        prefix = np.arange(len(ids))[None] < prompt_len
        token = int(np.argmax(ctx.model(x, prefix, np.ones_like(x))[0, -1]))
        if token == specials.eod:
            break
        ids.append(token)
        out.append(token)
    return np.asarray(out, np.int32)


def test_eval_writes_a_result_and_prints_a_table(run_dir, capsys, monkeypatch):
    # Decoding answers items 0 and 2 right (their value, then the end token) and item 1 with
    # a wrong value: the headline must be 2/3 and the predictions these, in the prefix layout.
    tok = ByteTokenizer()
    task = get_task("mqar")
    items = task.items(task.parse(["pairs=[4]", "samples=3"]), tok)
    answers = [np.append(item.answer, tok.specials.eod) for item in items]
    answers[1] = np.append(tok.encode("x" * len(items[1].answer)), tok.specials.eod)
    by_prompt = {tuple(item.context): answer for item, answer in zip(items, answers, strict=True)}

    def complete(model, prompts, *, max_new, **kwargs):
        assert [p[0] for p in prompts] == [tok.specials.paradigm(1)] * 3  # prefix_lm's paradigm
        return [by_prompt[tuple(p[1:-1])][: n - 1] for p, n in zip(prompts, max_new, strict=True)]

    monkeypatch.setattr(runner, "complete", complete)
    assert main(["eval", "mqar", "--checkpoint", str(run_dir), *TASK]) == 0
    out = capsys.readouterr().out
    assert "pairs  accuracy  n" in out and "format prefix" in out
    assert _written(out) == run_dir / "eval" / "mqar@step=4.json"  # the run's own settings
    result = json.loads((run_dir / "eval" / "mqar@step=4.json").read_text())
    assert result["format"] == "prefix" and result["step"] == 4 and result["points"][0]["n"] == 3
    assert result["headline"] == pytest.approx(2 / 3)
    assert [p["prediction"] for p in result["predictions"]] == [
        tok.decode(items[0].answer),
        "x" * len(items[1].answer),
        tok.decode(items[2].answer),
    ]


def test_eval_without_tasks_asks_the_runs_configured_tasks(run_dir, capsys):
    assert main(["eval", "--checkpoint", str(run_dir), "--set", "samples=2"]) == 0
    out = capsys.readouterr().out
    assert "mqar: accuracy = fraction of held-out queries" in out and "pairs  accuracy  n" in out
    assert json.loads(_written(out).read_text())["points"][0]["n"] == 2


def test_results_under_other_settings_or_steps_are_kept_apart(run_dir, capsys):
    own = run_dir / "eval" / "mqar@step=4.json"
    assert main(["eval", "mqar", "--checkpoint", str(run_dir), *TASK]) == 0
    first = own.read_text()
    other = ["--set", "pairs=[4]", "--set", "samples=2", "--set", "batch_size=4"]
    assert main(["eval", "mqar", "--checkpoint", str(run_dir), *other]) == 0
    assert _written(capsys.readouterr().out) == run_dir / "eval" / "mqar@step=4,samples=2.json"
    assert main(["eval", "mqar", "--checkpoint", str(run_dir), *TASK, "--step", "2"]) == 0
    earlier = _written(capsys.readouterr().out)
    assert earlier == run_dir / "eval" / "mqar@step=2.json"
    assert json.loads(earlier.read_text())["step"] == 2
    other_result = json.loads((run_dir / "eval" / "mqar@step=4,samples=2.json").read_text())
    assert other_result["settings"]["samples"] == 2
    assert own.read_text() == first  # the run's own result is untouched
    assert main(["eval", "mqar", "--checkpoint", str(run_dir), *TASK, "--step", "3"]) == 2
    assert "3" in capsys.readouterr().err


@pytest.mark.slow  # compiles the decode loop through the CLI
def test_generate_prints_the_greedy_continuation(run_dir, capsys):
    argv = ["generate", "--checkpoint", str(run_dir), "--prompt", "Ada ", "--max-new-tokens", "5"]
    assert main(argv) == 0
    # The same continuation computed here by full forward passes, one token at a time.
    ctx = EvalContext.load(run_dir)
    expected = ctx.tokenizer.decode(_greedy(ctx, ctx.tokenizer.encode("Ada "), 5))
    assert capsys.readouterr().out == expected + "\n"


def _setting(assignment: str) -> tuple[str, object]:
    key, _, value = assignment.partition("=")
    return key, yaml.safe_load(value)


@pytest.mark.slow  # a whole experiment
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
    partial = Trainer(config, out / "seed0" / "ntp", progress=False)
    partial.train_one()
    partial.save()
    partial.close()
    assert main(["experiment", str(path), "--output", str(out)]) == 0
    assert json.loads((out / "seed0" / "ntp" / "train_done.json").read_text())["resumed"]
    table = (out / "results.md").read_text()
    assert "| ntp |" in table and "| mixed |" in table and "(causal)" in table
    assert "(prefix)" in table and (out / "plots" / "mqar.png").is_file()
    capsys.readouterr()
    # A second call finds both runs trained and evaluated: it only rewrites the summary.
    assert main(["experiment", str(path), "--output", str(out)]) == 0
    assert "mqar:" not in capsys.readouterr().out
    assert (out / "results.md").read_text() == table


@pytest.mark.slow  # a whole experiment
def test_staged_experiment_pretrains_finetunes_records_curves_and_resumes(tmp_path, capsys):
    """Two runs (one pretrained, one from scratch) through pretrain, fine-tune and evaluate."""
    shared = dict(_setting(a) for a in [*TINY, "train.steps=4", "train.checkpoint_every=4"])
    task = {"book_sizes": [3], "digits": 3, "samples": 4, "batch_size": 4}
    spec = {
        "name": "staged",
        "shared": shared,
        "runs": [
            {"name": "ntp", "set": {"objectives.mixture": [{"name": "next_token"}]}},
            {"name": "scratch", "pretrain": False},
        ],
        "finetune": {
            "mixture": [{"name": "task_format", "params": {"task": "phonebook",
                                                          "settings": {"book_sizes": [3],
                                                                       "digits": 3}}}],
            "steps": 4, "lr": 1e-3, "curve_every": 2, "seq_len": 128,
            "curve": {"phonebook": {**task, "seed": 7}},
        },
        "tasks": {"phonebook": task},
    }  # fmt: skip
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    # --set reaches every run: the pretraining stage, and the control's one stage.
    argv = ["experiment", str(path), "--output", str(out), "--seeds", "3", "--set", "train.steps=6"]
    assert main(argv) == 0
    for seed in (3,):
        ft = out / f"seed{seed}" / "ntp" / "finetune"
        assert json.loads((ft / "train_done.json").read_text())["steps"] == 4
        pretrain = out / f"seed{seed}" / "ntp" / "pretrain" / "train_done.json"
        assert json.loads(pretrain.read_text())["steps"] == 6
        # The pretrained run's curve starts at step 0 (before fine-tuning); checkpoints 2, 4.
        assert sorted(p.name for p in (ft / "curve").iterdir()) == [
            "phonebook-0000000.json", "phonebook-0000002.json", "phonebook-0000004.json"
        ]  # fmt: skip
        scratch = out / f"seed{seed}" / "scratch"
        assert not (scratch / "pretrain").exists()
        # From scratch: the pretraining steps plus the fine-tuning steps, in one stage.
        assert json.loads((scratch / "finetune" / "train_done.json").read_text())["steps"] == 10
    table = (out / "results.md").read_text()
    assert "| ntp |" in table and "| scratch |" in table and "seed3" not in table
    assert "steps to 50%" in table and "Learning curve: phonebook" in table
    assert (out / "plots" / "curve-phonebook.png").is_file()
    data = json.loads((out / "results.json").read_text())
    assert set(data["ntp"]["seeds"]) == {"3"}
    assert [c["step"] for c in data["ntp"]["seeds"]["3"]["curves"]["phonebook"]] == [0, 2, 4]
    # An evaluation of a run under other settings is kept apart from the experiment's own.
    ft = out / "seed3" / "ntp" / "finetune"
    settings = ["book_sizes=[3]", "digits=3", "samples=2", "batch_size=4"]
    assert main(["eval", "phonebook", "--checkpoint", str(ft),
                 *[a for s in settings for a in ("--set", s)]]) == 0  # fmt: skip
    capsys.readouterr()
    # Run again: every stage is found finished; nothing is trained or evaluated again.
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "curve step" not in printed and "phonebook:" not in printed
    assert (out / "results.md").read_text() == table


def test_summary_aggregates_seeds_and_reads_steps_to_threshold():
    from birdie_ssm.evaluation.results import TaskResult
    from birdie_ssm.experiments.summary import mean_std, steps_to

    def point(step, acc):
        return TaskResult("phonebook", "book_sizes", "exact_match", "native",
                          [{"book_sizes": 4, "exact_match": acc}], {}, step)  # fmt: skip

    curve = [point(0, 0.0), point(50, 0.4), point(100, 0.6), point(150, 0.95)]
    assert steps_to(curve, 0.5) == 100 and steps_to(curve, 0.9) == 150
    assert steps_to(curve[:2], 0.5) is None
    assert mean_std([0.5]) == "0.500" and mean_std([0.2, 0.4]) == "0.300 ± 0.141"
