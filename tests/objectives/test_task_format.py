"""task_format: training examples are the evaluation tasks' own items, within budget."""

import numpy as np
import pytest

from birdie_ssm.config import ObjectiveEntry
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives import expand_arms, get_objective
from birdie_ssm.objectives.base import build_config
from birdie_ssm.pipeline.inprocess import Pipeline
from birdie_ssm.tasks import TASKS, get_task, task_settings
from birdie_ssm.text.tokenizer import ByteTokenizer, SpecialTokens

TOK = ByteTokenizer()
PARADIGM = TOK.specials.paradigm(0)
DOCUMENT = np.arange(300, dtype=np.int32) % 256
# One sweep point each, so the objective's rng reaches the item builder as sweep_rngs' does.
SYNTHESISED = {
    "phonebook": {"book_sizes": [8]},
    "multi-phonebook": {"queries": [2], "book_size": 6},
    "mqar": {"pairs": [8]},
    "copying": {"lengths": [16]},
    "selective-copying": {"lengths": [32], "tokens": 4},
}


def objective(task, settings=None, specials=TOK.specials):
    cls = get_objective("task_format")
    return cls(build_config(cls, {"task": task, "settings": settings}), specials, PARADIGM)


def test_every_registered_task_is_accepted():
    for task in TASKS:
        assert objective(task).task is TASKS[task]


@pytest.mark.parametrize("task", sorted(SYNTHESISED))
def test_examples_are_the_evaluation_items(task):
    overrides = SYNTHESISED[task]
    settings = task_settings(task, {**overrides, "seed": 5, "samples": 3})
    items = get_task(task).items(settings, TOK)
    made = objective(task, overrides)
    point = items[0].point
    for index, item in enumerate(items):
        rng = np.random.default_rng([5, point, index])
        inputs, targets, rest = made.make(DOCUMENT, rng, 4096)
        # The form a task-tuned run is asked in: copying's native one, the others' text form.
        native_input, native_answer = item.form(native=get_task(task).tune_native)
        assert np.array_equal(inputs, native_input) and np.array_equal(targets, native_answer)
        assert rest is DOCUMENT  # synthesised from the rng: the document is left untouched


def test_infilling_examples_mask_the_document_as_the_evaluation_does():
    text = "".join(chr(97 + i % 26) for i in range(200))
    settings = task_settings("infilling", {"spans": [8], "passage": 64})
    items = get_task("infilling").items(settings, TOK, lambda index: text)
    made = objective("infilling", {"spans": [8], "passage": 64})
    tokens = TOK.encode(text)
    for index, item in enumerate(items):
        inputs, targets, rest = made.make(tokens, np.random.default_rng([0, 8, index]), 4096)
        assert np.array_equal(inputs, item.native_input)
        assert np.array_equal(targets, item.native_answer)
        assert np.array_equal(rest, tokens[64:])
    assert made.make(tokens[:63], np.random.default_rng(0), 4096) is None


@pytest.mark.parametrize("task", [*sorted(SYNTHESISED), "infilling"])
def test_budget_is_respected_and_sampling_is_deterministic(task):
    made = objective(task)
    for seed, budget in enumerate([made.min_budget() - 1, made.min_budget(), 300, 2048]):
        out = made.sample(DOCUMENT, np.random.default_rng(seed), budget)
        again = made.sample(DOCUMENT, np.random.default_rng(seed), budget)
        if budget < made.min_budget():
            assert out is None
            continue
        assert (out is None) == (again is None)
        if out is None:  # a draw longer than the sizes measured at construction
            continue
        example, _ = out
        assert len(example) <= budget
        assert np.array_equal(example.input_ids, again[0].input_ids)
        assert np.array_equal(example.target_ids, again[0].target_ids)
        assert (example.input_ids == PARADIGM).sum() == 1


def test_fixed_length_tasks_fit_exactly_their_min_budget():
    for task in ["copying", "mqar", "selective-copying", "infilling"]:
        made = objective(task)
        assert made.sample(DOCUMENT, np.random.default_rng(0), made.min_budget()) is not None


def test_only_the_sweep_points_that_fit_are_drawn():
    made = objective("copying", {"lengths": [8, 16, 64]})
    lengths = {len(made.make(DOCUMENT, np.random.default_rng(seed), 40)[1]) for seed in range(20)}
    assert lengths == {8, 16}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "must be one of phonebook, multi-phonebook, mqar, copying"),
        ({"task": "phone-book"}, "got 'phone-book'"),
        (
            {"task": "phonebook", "settings": {"book_size": [4]}},
            "accepted: digits, number_format, names, names_file, book_sizes",
        ),
        ({"task": "phonebook", "settings": {"samples": 4}}, "only applies to evaluation"),
        ({"task": "mqar", "settings": {"pairs": [0]}}, "pairs"),
    ],
)
def test_bad_configs_are_named(params, message):
    cls = get_objective("task_format")
    with pytest.raises(BirdieError, match=message):
        build_config(cls, params)


def test_text_tasks_need_the_runs_tokenizer_but_infilling_does_not():
    other = SpecialTokens(base_size=50_000)
    with pytest.raises(BirdieError, match="needs the run's tokenizer"):
        objective("phonebook", specials=other).min_budget()
    assert objective("infilling", specials=other).min_budget() == 128 + 3


def test_pipeline_runs_on_an_objective_that_reads_no_documents():
    entry = ObjectiveEntry(name="task_format", params={"task": ["copying", "mqar"]})
    arms = expand_arms([entry], TOK.specials)
    assert [a.name for a in arms] == ["task_format[task=copying]", "task_format[task=mqar]"]
    reads = []

    def documents(index):
        reads.append(index)
        return "some text " * 20

    pipe = Pipeline(documents, TOK, arms, seq_len=256, batch_size=4, seed=0)
    for _ in range(3):
        batch = pipe.next_batch()
        assert batch.input_ids.shape == (4, 256)
    assert len(reads) <= 3  # the buffer is topped up once and never consumed


def test_task_format_writes_text_tasks_with_any_tokenizer(tmp_path):
    """Objectives get the run's tokenizer: a task's text items under a BPE vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from birdie_ssm.config import DataConfig, ObjectiveEntry
    from birdie_ssm.text import make_tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    bpe.train_from_iterator(["Ada Lovelace: 6123\n", "the quick brown fox"] * 20, trainer)
    path = tmp_path / "tokenizer.json"
    bpe.save(str(path))
    tokenizer = make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path=str(path)))
    entry = ObjectiveEntry(name="task_format", params={"task": "phonebook",
                           "settings": {"book_sizes": [3], "digits": 3}})  # fmt: skip
    with pytest.raises(BirdieError, match="needs the run's tokenizer"):
        expand_arms([entry], tokenizer.specials)[0].objective.min_budget()
    arm = expand_arms([entry], tokenizer.specials, tokenizer=tokenizer)[0]
    example, _ = arm.objective.sample(np.zeros(0, np.int32), np.random.default_rng(0), 512)
    text = tokenizer.decode(example.input_ids[~tokenizer.specials.is_special(example.input_ids)])
    answer = tokenizer.decode(example.target_ids)
    assert text.count(": ") >= 3 and answer.isdigit() and f": {answer}\n" in text


@pytest.mark.parametrize("task", [name for name, t in TASKS.items() if t.tuned_form is not None])
def test_a_tasks_tuned_form_is_its_items_trained_form(task):
    """``tuned_form`` (built alone, for speed) gives exactly the form task_format trains on."""
    spec = get_task(task)
    settings = task_settings(task, {})
    for point in spec.points(settings):
        for seed in range(5):
            item = spec.item(settings, TOK, point, np.random.default_rng([seed, point]))
            fast = spec.tuned_form(settings, TOK, point, np.random.default_rng([seed, point]))
            for want, got in zip(item.form(native=spec.tune_native), fast, strict=True):
                assert got.dtype == want.dtype and np.array_equal(got, want)


def test_mqar_task_format_trains_its_text_form_under_a_bpe_vocabulary(tmp_path):
    """Keys spelled in varying numbers of BPE tokens have no native form; the text form that
    task_format trains on does not need one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from birdie_ssm.config import DataConfig
    from birdie_ssm.text import make_tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    words = [f"a{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    bpe.train_from_iterator(words * 50, trainer)  # 'ab' is one token, 'xq' two
    path = tmp_path / "tokenizer.json"
    bpe.save(str(path))
    tokenizer = make_tokenizer(DataConfig(tokenizer="hf", tokenizer_path=str(path)))
    entry = ObjectiveEntry(name="task_format", params={"task": "mqar",
                           "settings": {"pairs": [64], "key_length": 2}})  # fmt: skip
    # Keys of varying token lengths make no table: the item has its text form only.
    settings = task_settings("mqar", {"pairs": [64], "key_length": 2})
    item = get_task("mqar").item(settings, tokenizer, 64, np.random.default_rng(0))
    inputs, answer = item.form(native=True)
    assert not item.has_native and inputs is item.context and answer is item.answer
    arm = expand_arms([entry], tokenizer.specials, tokenizer=tokenizer)[0]
    example, _ = arm.objective.sample(np.zeros(0, np.int32), np.random.default_rng(0), 4096)
    text = tokenizer.decode(example.input_ids[~tokenizer.specials.is_special(example.input_ids)])
    assert text.count(":") == 65 and tokenizer.decode(example.target_ids).isdigit()
