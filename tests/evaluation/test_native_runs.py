"""Runs trained on one synthetic objective alone are evaluated in that objective's layout."""

import json
import re
from pathlib import Path

import pytest

from birdie_ssm.cli import main
from birdie_ssm.evaluation import runner
from birdie_ssm.tasks import get_task
from birdie_ssm.text.tokenizer import ByteTokenizer
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

FIXED = "controller.name=fixed"  # the Birdie controller's reward model costs compilations
RECALL = (
    "objectives.mixture=[{name: associative_recall, params: "
    "{pairs: '2-4', key_length: 3, value_length: 2, queries: '1'}}]"
)
SELECTIVE = (
    "objectives.mixture=[{name: selective_copying, params: "
    "{spans: 1, context_length: '16-40', span_length: '2-6', delimiter_length: '1-3'}}]"
)


def _train(path, mixture):
    # Steps and a checkpoint by hand, not fit(): its validation passes would add compilations.
    trainer = Trainer(tiny_config(FIXED, mixture), path, progress=False)
    trainer.train_one()
    trainer.save()
    trainer.close()
    return path


@pytest.fixture(scope="module")
def recall_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("recall"), RECALL)


def _eval(run, task, *settings):
    argv = ["eval", task, "--checkpoint", str(run)]
    settings = [*settings, "samples=2", "batch_size=4"]
    return main([*argv, *[arg for s in settings for arg in ("--set", s)]])


def _written(out: str) -> Path:
    """The result file the CLI says it wrote."""
    return Path(re.findall(r"^written to (.+)$", out, re.M)[-1])


def test_associative_recall_run_is_evaluated_on_mqar_natively(recall_run, capsys):
    assert _eval(recall_run, "mqar", "pairs=[4]") == 0
    out = capsys.readouterr().out
    assert "format native" in out
    result = json.loads(_written(out).read_text())
    assert result["format"] == "native" and [p["pairs"] for p in result["points"]] == [4]


def test_a_text_format_is_refused_for_a_run_that_trained_no_text(recall_run, capsys):
    assert _eval(recall_run, "mqar", "pairs=[4]", "format=prefix") == 2
    assert "no prefix_lm" in capsys.readouterr().err


def test_a_task_registered_outside_the_package_is_evaluated_from_the_cli(recall_run, capsys):
    from birdie_ssm.tasks import unregister_task
    from tests.tasks.toy_task import registered_toy_task

    toy_task = registered_toy_task()

    try:
        assert _eval(recall_run, toy_task.NAME, "pairs=[3]") == 0
        out = capsys.readouterr().out
        assert "format native" in out
        result = json.loads(_written(out).read_text())
        assert result["metric"] == "exact" and result["points"][0]["n"] == 2
    finally:
        unregister_task(toy_task.NAME)


def test_selective_copying_run_is_evaluated_on_selective_copying_natively(
    tmp_path, capsys, monkeypatch
):
    run = _train(tmp_path / "selective", SELECTIVE)
    settings = ["lengths=[24]", "tokens=4", "samples=2", "batch_size=4"]
    task = get_task("selective-copying")
    items = task.items(task.parse(settings), ByteTokenizer())
    # Decoding answers the native form: item 0 right, item 1 with its last found token wrong.
    answers = [item.native_answer.copy() for item in items]
    answers[1][-2] = ByteTokenizer().encode("~")[0]  # the last token before the done token
    by_input = {tuple(item.native_input): a for item, a in zip(items, answers, strict=True)}

    def complete(model, prompts, **kwargs):
        return [by_input[tuple(p[1:-1])] for p in prompts]  # [paradigm, input..., sep]

    monkeypatch.setattr(runner, "complete", complete)
    assert _eval(run, "selective-copying", "lengths=[24]", "tokens=4") == 0
    out = capsys.readouterr().out
    assert "format native" in out
    result = json.loads(_written(out).read_text())
    # Per-token accuracy of the native target, computed here: 1 for item 0, and for item 1
    # every token but one of its target.
    wrong = 1 / len(items[1].native_answer)
    assert result["format"] == "native"
    assert result["headline"] == pytest.approx((1.0 + (1 - wrong)) / 2)
