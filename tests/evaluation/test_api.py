"""The public evaluation API and the eval/generate verbs around it: custom items, scorers,
stored predictions, batch size 1, read-only run directories, native generation."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

import birdie_ssm.evaluation as ev
from birdie_ssm.cli import main
from birdie_ssm.errors import BirdieError
from birdie_ssm.evaluation.runner import complete
from birdie_ssm.models import build_model
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

STEPS = ["train.steps=4", "train.checkpoint_every=4", "train.log_every=2"]
ITEMS = [{"prompt": "Ada Lovelace: ", "answer": "12"}, {"prompt": "Bo: ", "answer": "7"}]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("api_run")
    trainer = Trainer(tiny_config(*STEPS), path, progress=False)
    trainer.fit()
    trainer.close()
    return path


@pytest.fixture(scope="module")
def run(run_dir):
    return ev.load(run_dir)


def test_complete_works_at_batch_size_one():
    config = tiny_config()
    model = build_model(config.model, 448, nnx.Rngs(0))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, 256, size=n).astype(np.int32) for n in (5, 9, 12)]
    kwargs = {"prefix_len": None, "max_new": 4, "stop": 257, "filler": 256}
    one = complete(model, prompts, batch_size=1, **kwargs)
    many = complete(model, prompts, batch_size=4, **kwargs)
    assert len(one) == 3
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


def test_evaluate_returns_every_prediction_and_the_mean(run, monkeypatch):
    # The real model: the same predictions at any batch size.
    result = ev.evaluate(run, ITEMS, "exact", batch_size=1)
    assert isinstance(result, ev.EvalResult) and result.step == 4 and result.format == "prefix"
    again = ev.evaluate(run, [(i["prompt"], i["answer"]) for i in ITEMS], "contains", batch_size=4)
    assert [p.prediction for p in again.predictions] == [p.prediction for p in result.predictions]
    # Decoding that answers "12" then stops, and "9 and more" (cut at its 3-token limit): every
    # scorer and the mean, computed here from those answers.
    tok = run.tokenizer
    seen = []

    def complete(model, prompts, *, max_new, stop, **kwargs):
        seen.append(([p.tolist() for p in prompts], list(max_new)))
        said = [tok.encode("12"), tok.encode("9 and more")]
        return [ids[:n] for ids, n in zip(said, max_new, strict=True)]

    monkeypatch.setattr(ev.api, "complete", complete)
    paradigm, sep = tok.specials.paradigm(1), tok.specials.sep  # prefix_lm's layout
    exact = ev.evaluate(run, ITEMS, "exact")
    assert seen[0] == (
        [[paradigm, *tok.encode(i["prompt"]).tolist(), sep] for i in ITEMS],
        [4, 3],  # each answer's tokens and 2
    )
    assert [p.prompt for p in exact.predictions] == [i["prompt"] for i in ITEMS]
    assert [(p.answer, p.prediction) for p in exact.predictions] == [("12", "12"), ("7", "9 a")]
    assert [p.score for p in exact.predictions] == [1.0, 0.0] and exact.score == 0.5
    assert ev.evaluate(run, ITEMS, "contains").score == 0.5
    assert ev.evaluate(run, ITEMS, "token_accuracy").score == 0.5
    custom = ev.evaluate(run, ITEMS, lambda prediction, answer: len(prediction) / 4)
    assert custom.score == (2 / 4 + 3 / 4) / 2 and custom.scorer == "<lambda>"
    data = exact.to_dict()
    assert data["n"] == 2 and data["predictions"][1]["prediction"] == "9 a"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"scorer": "fuzzy"}, "unknown scorer 'fuzzy'"),
        ({"objective": "copying"}, "did not train objective 'copying'"),
        ({"format": "native"}, "needs objective="),
        ({"items": [{"prompt": "x"}]}, "has no 'answer'"),
        ({"items": []}, "at least one item"),
    ],
)
def test_evaluate_refuses_bad_requests(run, kwargs, expected):
    kwargs = {"items": ITEMS, **kwargs}
    with pytest.raises(BirdieError, match=expected):
        ev.evaluate(run, **kwargs)


def test_evaluate_in_a_trained_objectives_layout(run):
    result = ev.evaluate(run, ITEMS, objective="infilling")
    assert result.format == "native" and len(result.predictions) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "does not exist"),
        ('{"prompt": "a", "answer": "b"}\n{"prompt": "a",\n', ":2: not valid JSON"),
        ('{"prompt": "a"}\n', ":1: missing key 'answer'"),
        ('["a", "b"]\n', ":1: expected an object"),
        ('{"prompt": "a", "answer": 3}\n', "'answer' must be a string"),
        ("\n\n", "holds no items"),
    ],
)
def test_items_files_fail_on_one_clear_line(tmp_path, capsys, text, expected):
    path = tmp_path / "items.jsonl"
    if text is not None:
        path.write_text(text)
    with pytest.raises(BirdieError, match=expected):
        ev.read_items(path)
    (tmp_path / "run").mkdir()
    code = main(["eval", "--items", str(path), "--checkpoint", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and expected.lstrip(":") in err and err.count("\n") == 1


def _written(out: str) -> Path:
    """The result file the CLI says it wrote (the last one)."""
    return Path(re.findall(r"^written to (.+)$", out, re.M)[-1])


def test_eval_custom_items_from_the_cli(run_dir, tmp_path, capsys):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in ITEMS * 5))
    argv = ["eval", "custom", "--items", str(path), "--checkpoint", str(run_dir)]
    assert main([*argv, "--scorer", "contains", "--show", "1", "--set", "batch_size=1"]) == 0
    out = capsys.readouterr().out
    assert "contains" in out and "prediction:" in out and out.count("prediction:") == 1
    contains = _written(out)
    data = json.loads(contains.read_text())
    assert data["n"] == 10 and len(data["predictions"]) == 8  # a sample by default
    assert main([*argv, "--all-predictions"]) == 0
    out = capsys.readouterr().out
    assert "prediction:" not in out  # shown only on request
    assert _written(out) != contains and contains.is_file()  # another scorer: another file
    data = json.loads(_written(out).read_text())
    assert len(data["predictions"]) == 10 and data["scorer"] == "exact"


def test_task_results_store_a_sample_of_predictions(run_dir, capsys):
    argv = ["eval", "phonebook", "--checkpoint", str(run_dir), "--set", "book_sizes=[3,4]",
            "--set", "samples=10", "--set", "batch_size=8"]  # fmt: skip
    assert main(argv) == 0
    written = _written(capsys.readouterr().out)
    data = json.loads(written.read_text())
    assert len(data["predictions"]) == 16  # 8 per sweep point
    record = data["predictions"][0]
    assert set(record) == {"point", "prompt", "answer", "prediction", "scores"}
    assert record["prompt"].endswith(": ") and set(record["scores"]) == {"exact", "digit_acc"}
    assert main([*argv, "--all-predictions"]) == 0
    assert len(json.loads(written.read_text())["predictions"]) == 20
    assert ev.read_result(written).predictions[0] == record


def test_unwritable_eval_folder_fails_before_any_work(run_dir, tmp_path, monkeypatch, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(ITEMS[0]) + "\n")
    real_access = os.access
    locked = {str(run_dir), str(run_dir / "eval")}  # root ignores permission bits: patch the check
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) in locked else real_access(p, m))
    monkeypatch.setattr(ev.EvalContext, "load", lambda *a: pytest.fail("loaded the model"))
    for extra in (["mqar"], ["--items", str(items)]):
        code = main(["eval", *extra, "--checkpoint", str(run_dir)])
        err = capsys.readouterr().err
        assert code == 2 and "not writable" in err and err.count("\n") == 1


def test_a_failing_write_is_one_line_after_the_table(run_dir, monkeypatch, capsys):
    real_write = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.parent.name == "eval":
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    argv = ["eval", "mqar", "--checkpoint", str(run_dir), "--set", "pairs=[4]",
            "--set", "samples=2", "--set", "batch_size=4"]  # fmt: skip
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and "pairs  accuracy  n" in captured.out  # the table was printed first
    assert "could not write" in captured.err and "No space left" in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_generate_in_a_trained_objectives_native_layout(run_dir, capsys):
    base = ["generate", "--checkpoint", str(run_dir), "--prompt", "Ada", "--max-new-tokens", "4"]
    assert main([*base, "--format", "native", "--objective", "infilling"]) == 0
    capsys.readouterr()
    for extra, expected in [
        (["--format", "native", "--objective", "copying"], "did not train objective 'copying'"),
        (["--format", "native"], "needs --objective"),
        (["--format", "causal", "--objective", "infilling"], "drop --format causal"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1
