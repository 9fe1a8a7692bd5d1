from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from birdie_ssm.evaluation import runner
from birdie_ssm.evaluation.prompts import PromptFormat
from birdie_ssm.evaluation.results import (
    TaskResult,
    items_result_path,
    read_result,
    result_path,
    save_result,
)
from birdie_ssm.evaluation.runner import bucket, complete
from birdie_ssm.models import build_model
from birdie_ssm.tasks import Item
from birdie_ssm.tasks.base import char_accuracy, exact_match, token_accuracy
from birdie_ssm.text.tokenizer import ByteTokenizer
from tests.helpers import tiny_config


@pytest.mark.parametrize(
    ("n", "minimum", "expected"), [(1, 16, 16), (16, 16, 16), (17, 16, 32), (900, 64, 1024)]
)
def test_bucket_is_the_next_power_of_two(n, minimum, expected):
    assert bucket(n, minimum) == expected


def test_scores_on_hand_made_cases():
    answer = np.array([1, 2, 3, 4])
    assert token_accuracy(np.array([1, 2, 9]), answer) == 0.5
    assert exact_match(np.array([1, 2, 3, 4, 7]), answer) == 1.0
    assert exact_match(np.array([1, 2, 3]), answer) == 0.0
    assert char_accuracy("1299", "1234") == 0.5


def test_batched_decoding_matches_one_prompt_at_a_time():
    """Left padding, filler rows and chunking must not change any row's greedy answer."""
    config = tiny_config("model.bidirectional=alternate")
    model = build_model(config.model, 448, nnx.Rngs(0))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, 256, size=n).astype(np.int32) for n in (5, 9, 30, 12, 7)]
    kwargs = {"prefix_len": None, "max_new": 6, "stop": 257, "filler": 256}
    together = complete(model, prompts, batch_size=4, **kwargs)
    # The same batch size keeps one compiled shape for both calls.
    alone = [complete(model, [p], batch_size=4, **kwargs)[0] for p in prompts[:2]]
    assert len(together) == 5 and all(len(t) <= 6 for t in together)
    for a, t in zip(alone, together, strict=False):
        np.testing.assert_array_equal(a, t)


def test_each_prompt_is_cut_to_its_own_limit():
    config = tiny_config()
    model = build_model(config.model, 448, nnx.Rngs(1))
    rng = np.random.default_rng(1)
    prompts = [rng.integers(0, 256, size=n).astype(np.int32) for n in (5, 9, 30, 12, 7)]
    kwargs = {"prefix_len": None, "stop": 257, "filler": 256, "batch_size": 4}
    common = complete(model, prompts, max_new=6, **kwargs)
    limits = [1, 6, 3, 2, 5]
    own = complete(model, prompts, max_new=limits, **kwargs)
    for row, full, limit in zip(own, common, limits, strict=True):
        assert len(row) <= limit
        np.testing.assert_array_equal(row, full[:limit])


def test_each_item_may_generate_its_own_answer_and_two_more(monkeypatch):
    """Not the sweep's longest answer: a short item must not run on into extra guesses."""
    seen = {}

    def fake_complete(model, prompts, *, max_new, **kwargs):
        seen["max_new"] = list(max_new)
        return [np.zeros(0, np.int32) for _ in prompts]

    monkeypatch.setattr(runner, "complete", fake_complete)
    tok = ByteTokenizer()
    items = [Item(np.arange(5), np.arange(n), point=n) for n in (1, 4, 30)]
    ctx = type("Ctx", (), {"model": None, "tokenizer": tok})()
    fmt = PromptFormat("prefix", tok.specials.paradigm(0), "prefix_lm")
    runner.predict(ctx, items, fmt, batch_size=4)
    assert seen["max_new"] == [3, 6, 32]


def test_result_round_trips_through_json(tmp_path):
    result = TaskResult(
        task="mqar", sweep="pairs", metric="accuracy", format="prefix",
        points=[{"pairs": 4, "accuracy": 0.5, "n": 2}, {"pairs": 8, "accuracy": 0.25, "n": 2}],
        settings={"samples": 2}, step=7, chance=0.01,
    )  # fmt: skip
    path = save_result(result, result_path(tmp_path, "mqar"))
    assert path == tmp_path / "eval" / "mqar.json"
    assert read_result(path) == result and result.headline == 0.375
    assert "pairs  accuracy  n" in result.table()


def test_a_result_is_keyed_by_its_step_and_what_sets_it_apart_from_the_runs_own():
    own = {"pairs": [4, 8], "samples": 32, "seed": 0, "format": "auto"}
    assert runner.task_result_key(own, dict(own), 100) == "step=100"
    assert runner.task_result_key(own, own | {"samples": 8}, 100) == "step=100,samples=8"
    assert runner.task_result_key(own, own | {"pairs": [4], "seed": 3}, 50) == (
        "step=50,pairs=[4],seed=3"
    )
    # Not filename-safe (a '/' or '#'), or too long: a hash of the settings and the step.
    hashed = runner.task_result_key(own, own | {"format": "a/b"}, 100)
    assert hashed.startswith("h") and len(hashed) == 13
    assert hashed != runner.task_result_key(own, own | {"format": "a/b"}, 50)
    assert result_path("run", "mqar", "samples=8") == Path("run/eval/mqar@samples=8.json")


def test_extending_a_run_keeps_the_earlier_steps_result_apart(tmp_path):
    """Evaluated at step 6 while it was the latest, then at 8 after training on: two files."""
    config = tiny_config()
    settings = runner.task_settings("mqar", dict(config.eval.tasks.get("mqar") or {}))
    (tmp_path / "checkpoints" / "6").mkdir(parents=True)
    at6 = runner.result_file(runner.EvalContext(None, config, ByteTokenizer(), tmp_path, 6),
                             "mqar", settings)  # fmt: skip
    (tmp_path / "checkpoints" / "8").mkdir()
    at8 = runner.result_file(runner.EvalContext(None, config, ByteTokenizer(), tmp_path, 8),
                             "mqar", settings)  # fmt: skip
    assert at6 != at8 and at6.name == "mqar@step=6.json" and at8.name == "mqar@step=8.json"


def test_custom_item_results_are_keyed_by_file_scorer_options_and_step(tmp_path):
    items = tmp_path / "f.jsonl"
    items.write_text('{"prompt": "a", "answer": "b"}\n')
    paths = {
        items_result_path(tmp_path, items, "exact", 4, {}),
        items_result_path(tmp_path, items, "contains", 4, {}),
        items_result_path(tmp_path, items, "token_accuracy", 2, {}),
        items_result_path(tmp_path, items, "exact", 4, {"format": "causal"}),
        items_result_path(tmp_path, items, "exact", 4, {"max_new_tokens": 3}),
    }
    assert len(paths) == 5
    assert items_result_path(tmp_path, items, "exact", 4, {}) in paths  # the same evaluation
    items.write_text('{"prompt": "a", "answer": "c"}\n')  # other items under the same name
    assert items_result_path(tmp_path, items, "exact", 4, {}) not in paths


def _infilling_prompts(monkeypatch, **settings):
    """What every infilling item of a prose-trained run shows the model (decoding replaced by
    an empty answer: only the items matter here), and the result's notes."""
    monkeypatch.setattr(runner, "complete", lambda model, prompts, **kw: [[] for _ in prompts])
    ctx = runner.EvalContext(None, tiny_config("data.corpus=prose"), ByteTokenizer(), None, 0)
    values = {"spans": [8], "passage": 128, **settings}
    result = runner.evaluate_task(
        ctx, "infilling", runner.task_settings("infilling", values), all_predictions=True
    )
    # The first quarter of a passage is never masked: it tells passages apart.
    return [r["prompt"][:24] for r in result.predictions], result.notes


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_infilling_asks_distinct_held_out_passages_and_seeds_ask_others(monkeypatch):
    # Before: 41 held-out documents read from the start and wrapped around, so 64 items held
    # 41 passages and seeds 0 and 1 shared 23 of 32.
    first, notes = _infilling_prompts(monkeypatch, samples=64)
    assert len(set(first)) == 64 and notes == []
    seed0, _ = _infilling_prompts(monkeypatch, samples=32, seed=0)
    seed1, _ = _infilling_prompts(monkeypatch, samples=32, seed=1)
    assert len(set(seed0)) == len(set(seed1)) == 32 and not set(seed0) & set(seed1)


def test_infilling_caps_samples_to_the_passages_there_are_and_says_so(monkeypatch):
    prompts, notes = _infilling_prompts(monkeypatch, samples=500, passage=2048, spans=[64])
    assert 10 < len(prompts) < 500 and len(set(prompts)) == len(prompts)
    assert notes == [
        f"samples: {len(prompts)} of the 500 asked, the distinct 2048-token passages the "
        "held-out documents hold (every seed asks these)"
    ]
