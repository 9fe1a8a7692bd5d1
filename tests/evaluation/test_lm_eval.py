"""The lm-evaluation-harness adapter: its core offline (no lm_eval import), then, where lm_eval
is installed, a local multiple-choice task through ``lm_eval.simple_evaluate``."""

import importlib.util
import json
import shlex
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from birdie_ssm.evaluation import lm_eval as lm_eval_adapter
from birdie_ssm.evaluation.lm_eval import HarnessModel
from birdie_ssm.evaluation.prompts import render
from birdie_ssm.evaluation.runner import EvalContext, complete
from birdie_ssm.models import build_model
from birdie_ssm.tasks.base import text_of
from birdie_ssm.text import make_tokenizer, padded_vocab_size
from tests.helpers import tiny_config

PAIRS = [("Ada Lovelace: ", "7012"), ("", "hello"), ("The cat sat on the", " mat."), ("x", "y")]


@pytest.fixture(scope="module")
def ctx():
    config = tiny_config("model.bidirectional=alternate")
    tok = make_tokenizer(config.data)
    model = build_model(config.model, padded_vocab_size(tok), nnx.Rngs(3))
    return EvalContext(model, config, tok, None, 0)


def _direct(ctx, context, continuation):
    """log p(continuation | context) from one unpadded forward pass over the prefix layout."""
    tok, specials = ctx.tokenizer, ctx.tokenizer.specials
    fmt = HarnessModel(ctx).fmt
    stripped = context.rstrip(" ")
    cont = np.asarray(tok.encode(context[len(stripped) :] + continuation), np.int32)
    prompt = render(fmt, specials, tok.encode(stripped) if stripped else [])
    ids = np.concatenate([prompt, cont])[None]
    prefix = np.zeros_like(ids, bool)
    prefix[0, : len(prompt)] = True  # the prefix layout: the whole prompt read bidirectionally
    logits = ctx.model(ids, prefix, np.ones_like(ids))[0]
    logp = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    positions = np.arange(len(prompt) - 1, ids.shape[1] - 1)
    picked = logp[positions, ids[0, positions + 1]]
    greedy = logp[positions].argmax(-1) == ids[0, positions + 1]
    return float(picked.sum()), bool(greedy.all())


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_loglikelihood_equals_a_direct_forward_pass(ctx):
    assert HarnessModel(ctx).fmt.kind == "prefix"  # the tiny quickstart trains prefix_lm
    for batch_size in (1, 3):
        got = HarnessModel(ctx, batch_size=batch_size).loglikelihood(PAIRS)
        for (context, cont), (logp, greedy) in zip(PAIRS, got, strict=True):
            want, want_greedy = _direct(ctx, context, cont)
            assert logp == pytest.approx(want, rel=1e-4, abs=1e-3) and greedy == want_greedy


def test_requests_may_be_instances_with_args(ctx):
    class Instance:
        def __init__(self, args):
            self.args = args

    model = HarnessModel(ctx)
    assert model.loglikelihood([Instance(p) for p in PAIRS]) == model.loglikelihood(PAIRS)


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_rolling_loglikelihood_sums_its_windows(ctx):
    text = "abcdefghij" * 3
    short = HarnessModel(ctx, max_length=64)
    assert short.loglikelihood_rolling([(text,)])[0] == pytest.approx(
        short.loglikelihood([("", text)])[0][0], rel=1e-4
    )
    # A text longer than a window: windows of 13 tokens, each reading what room the row has
    # (16 - paradigm - separator - window) of the tokens before it.
    windowed = HarnessModel(ctx, max_length=16).loglikelihood_rolling([(text,)])[0]
    ids = ctx.tokenizer.encode(text)
    pieces = [(ids[max(0, s - (14 - len(ids[s : s + 13]))) : s], ids[s : s + 13])
              for s in range(0, len(ids), 13)]  # fmt: skip
    decoded = [(ctx.tokenizer.decode(c), ctx.tokenizer.decode(p)) for c, p in pieces]
    expected = sum(_direct(ctx, c, p)[0] for c, p in decoded)
    assert windowed == pytest.approx(expected, rel=1e-4)


def test_generate_until_is_greedy_decoding_cut_at_the_stop_string(ctx):
    model = HarnessModel(ctx, batch_size=2)
    specials = ctx.tokenizer.specials
    prompt = render(model.fmt, specials, ctx.tokenizer.encode("Ada"))
    raw = complete(ctx.model, [prompt], prefix_len=None, max_new=12, stop=specials.eod,
                   filler=specials.pad, batch_size=2)[0]  # fmt: skip
    text = text_of(ctx.tokenizer, raw) if len(raw) else ""  # cut at the first special token
    assert model.generate_until([("Ada", {"max_gen_toks": 12})]) == [text]
    if len(text) > 1:
        cut = model.generate_until([("Ada", {"until": [text[1]], "max_gen_toks": 12})])[0]
        assert cut == text[: text.index(text[1])]


def test_generate_until_keeps_the_question_and_caps_the_generation(ctx, monkeypatch):
    seen = {}

    def record(model, prompts, *, max_new, **kwargs):
        seen["prompts"], seen["max_new"] = prompts, max_new
        return [np.zeros(0, np.int32) for _ in prompts]

    monkeypatch.setattr(lm_eval_adapter, "complete", record)
    # max_length defaults to the run's seq_len (64 here), shorter than lm_eval's default 256
    # generated tokens: the whole question is read, the answer gets the rest of the row.
    model = HarnessModel(ctx)
    question = "Book: Ada 7012, Bob 6331. Ada?"
    model.generate_until([(question, {"until": ["\n"]})])
    prompt = render(model.fmt, ctx.tokenizer.specials, ctx.tokenizer.encode(question))
    assert np.array_equal(seen["prompts"][0], prompt)
    assert seen["max_new"] == [64 - len(prompt)] and len(prompt) + 10 < 64
    # A question longer than the row loses its oldest tokens, leaving the answer the 5 tokens
    # it asks for (at most a quarter of the row: 16 of 64).
    overhead = len(prompt) - len(ctx.tokenizer.encode(question))
    ids = ctx.tokenizer.encode(question * 3)
    for wanted, room in ((5, 5), (256, 16)):
        model.generate_until([(question * 3, {"max_gen_toks": wanted})])
        kept = render(model.fmt, ctx.tokenizer.specials, ids[len(ids) - (64 - room - overhead) :])
        assert len(kept) == 64 - room and np.array_equal(seen["prompts"][0], kept)
        assert seen["max_new"] == [room]


def test_a_continuation_longer_than_the_row_is_scored_whole(ctx):
    """Every token of a continuation longer than the row counts: windows of 13 tokens (16 -
    paradigm - separator - one context token), each after what room the row has of the tokens
    before it."""
    context, continuation = "Ada: ", "abcdefghij" * 4
    got, _ = HarnessModel(ctx, max_length=16).loglikelihood([(context, continuation)])[0]
    ids = ctx.tokenizer.encode("Ada:")
    cont = ctx.tokenizer.encode(" " + continuation)
    whole = [*ids, *cont]
    expected = 0.0
    for start in range(0, len(cont), 13):
        piece = cont[start : start + 13]
        before = whole[: len(ids) + start][-(14 - len(piece)) :]
        expected += _direct(ctx, ctx.tokenizer.decode(before), ctx.tokenizer.decode(piece))[0]
    assert got == pytest.approx(expected, rel=1e-4)
    tail_only = _direct(ctx, ctx.tokenizer.decode(whole[-14:-13]), continuation[-13:])[0]
    assert got < tail_only - 1.0  # the whole continuation, not the part that fits one row


needs_lm_eval = pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None, reason="lm_eval not installed"
)


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory):
    """A 2-step run and a local multiple-choice lm_eval task (no download)."""
    from birdie_ssm.train.trainer import Trainer

    tmp_path = tmp_path_factory.mktemp("harness")
    run = tmp_path / "run"
    steps = ["train.steps=2", "train.checkpoint_every=2", "train.log_every=1"]
    trainer = Trainer(tiny_config(*steps), run, progress=False)
    trainer.fit()
    trainer.close()
    data = tmp_path / "data.jsonl"
    rows = [{"q": f"{a} + {b} =", "choices": [str(a + b), str(a + b + 1)], "gold": 0}
            for a, b in [(1, 2), (3, 4), (2, 2)]]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tiny_sums.yaml").write_text(
        "task: tiny_sums\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: '{{q}}'\ndoc_to_choice: '{{choices}}'\ndoc_to_target: gold\n"
        "metric_list:\n  - metric: acc\n"
    )
    return run, tmp_path / "tasks", rows


def _expected_accuracy(run, rows):
    """lm_eval's acc computed here: the choice with the higher log-likelihood, against gold."""
    model = HarnessModel(run)
    right = 0
    for row in rows:
        scores = model.loglikelihood([(row["q"], " " + c) for c in row["choices"]])
        right += int(np.argmax([logp for logp, _ in scores]) == row["gold"])
    return right / len(rows)


@needs_lm_eval
def test_simple_evaluate_runs_a_local_multiple_choice_task(harness_run):
    import lm_eval
    from lm_eval.tasks import TaskManager

    run, tasks, rows = harness_run
    results = lm_eval.simple_evaluate(
        model="birdie-ssm",
        model_args=f"run_dir={run},batch_size=4",
        tasks=["tiny_sums"],
        task_manager=TaskManager(include_path=str(tasks)),
    )
    assert results["results"]["tiny_sums"]["acc,none"] == _expected_accuracy(run, rows)


def _readme_command() -> list[str]:
    """The README's lm-eval command line, as a list of arguments after the program."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### lm-evaluation-harness", 1)[1].split("```bash", 1)[1]
    block = section.split("```", 1)[0].replace("\\\n", " ")
    line = next(x for x in block.splitlines() if "birdie_ssm.evaluation.lm_eval" in x)
    words = shlex.split(line)
    return words[words.index("birdie_ssm.evaluation.lm_eval") + 1 :]


@needs_lm_eval
def test_the_readme_command_runs_as_written(harness_run, capsys):
    # The documented command (lm_eval's CLI parses model_args into a mapping, and passes its
    # own batch_size beside it); only the run and the task change: a local one, no download.
    run, tasks, rows = harness_run
    argv = _readme_command()
    assert "--model_args" in argv and "batch_size=" in argv[argv.index("--model_args") + 1]
    argv = [a.replace("runs/quickstart", str(run)) for a in argv]
    argv[argv.index("--tasks") + 1] = "tiny_sums"
    lm_eval_adapter.main([*argv, "--include_path", str(tasks)])
    out = capsys.readouterr().out
    table = next(line for line in out.splitlines() if line.startswith("|tiny_sums"))
    assert f"{_expected_accuracy(run, rows):.4f}" in table


@needs_lm_eval
def test_model_args_win_over_lm_evals_own_settings():
    from birdie_ssm.evaluation.lm_eval import BirdieSSMLM

    made = []

    class Recording(BirdieSSMLM):
        def __init__(self, **kwargs):
            made.append(kwargs)

    extra = {"batch_size": "1", "max_batch_size": None, "device": "cpu"}
    Recording.create_from_arg_string("run_dir=r,batch_size=8", extra)
    Recording.create_from_arg_obj({"run_dir": "r", "batch_size": 8}, extra)
    assert made == [{"run_dir": "r", "batch_size": 8, "device": "cpu"}] * 2
