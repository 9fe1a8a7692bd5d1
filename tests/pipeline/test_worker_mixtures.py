"""Every built-in arm runs in data worker processes: the shipped mixtures, pickled to 2 spawned
workers, give the batches their worker pipelines give in-process (deterministic streams)."""

from pathlib import Path

import numpy as np
import pytest

from birdie_ssm.config import Config, ObjectiveEntry, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.experiments.spec import load_spec
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline import WorkerPool, open_pipeline
from birdie_ssm.text import make_tokenizer
from birdie_ssm.text.corpus import make_source

ROOT = Path(__file__).resolve().parents[2]


def quickstart_mixture() -> list[ObjectiveEntry]:
    return load_config(ROOT / "configs/quickstart.yaml").objectives.mixture


def retrieval_gpu_birdie_mixture() -> list[ObjectiveEntry]:
    spec = load_spec(ROOT / "configs/experiments/retrieval_gpu.yaml")
    (run,) = [r for r in spec.runs if r.name == "gated_birdie"]
    return [ObjectiveEntry.model_validate(e) for e in run.set["objectives.mixture"]]


# (mixture, seq_len): the smallest rows the mixture's arms fit in.
CASES = {
    "quickstart": (quickstart_mixture, 128),
    "retrieval_gpu_birdie": (retrieval_gpu_birdie_mixture, 2048),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_mixtures_run_in_two_worker_processes(name):
    mixture, seq_len = CASES[name]
    config = Config.model_validate(
        {"data": {"seq_len": seq_len, "batch_size": 2, "workers": 2, "prefetch": 1}}
    )
    tokenizer, source = make_tokenizer(config.data), make_source(config.data)
    arms = expand_arms(mixture(), tokenizer.specials, tokenizer=tokenizer)
    weights = np.array([a.weight for a in arms]) / sum(a.weight for a in arms)
    pool = open_pipeline(config.data, source, tokenizer, arms, weights)
    assert isinstance(pool, WorkerPool)
    try:
        got = [pool.next_batch() for _ in range(4)]
    finally:
        pool.close()
    # The workers share out the streams; the batches are the in-process pipeline's.
    in_process = config.data.model_copy(update={"workers": 0})
    local = open_pipeline(in_process, source, tokenizer, arms, weights)
    for batch in got:
        want = local.next_batch()
        for key, value in want.as_dict().items():
            np.testing.assert_array_equal(batch.as_dict()[key], value, err_msg=key)
    seen = set(np.concatenate([b.arm_ids.ravel() for b in got]).tolist()) - {-1}
    assert len(seen) >= 3  # several arms, the synthetic ones included, were drawn


class Unpicklable:
    """A document source that cannot be sent to a worker process."""

    def __init__(self) -> None:
        self.callback = lambda index: "text"

    def __call__(self, index: int) -> str:
        return self.callback(index)


def test_an_unpicklable_piece_is_one_clear_error():
    config = Config.model_validate({"data": {"seq_len": 128, "batch_size": 2, "workers": 2}})
    tokenizer = make_tokenizer(config.data)
    arms = expand_arms([ObjectiveEntry(name="next_token")], tokenizer.specials)
    source = type("S", (), {"train": Unpicklable()})()
    with pytest.raises(BirdieError, match="data.workers: 0"):
        open_pipeline(config.data, source, tokenizer, arms, np.ones(1))


PLUGIN = '''
from dataclasses import dataclass

from birdie_ssm.objectives import Objective, register_objective


@dataclass(frozen=True)
class HeadConfig:
    length: int = 8


@register_objective("test_worker_head")
class Head(Objective):
    """Read a passage, then generate its first token."""

    Config = HeadConfig

    def make(self, tokens, rng, budget):
        n = min(self.config.length, budget - 1)
        return (tokens[:n], tokens[:1], tokens[n:]) if len(tokens) >= n > 0 else None
'''


def test_an_objective_from_a_py_file_runs_in_worker_processes(tmp_path):
    """A plug-in loaded by path has a made-up module name: workers load the same file first."""
    path = tmp_path / "head_objective.py"
    path.write_text(PLUGIN)
    config = Config.model_validate(
        {"data": {"seq_len": 64, "batch_size": 2, "workers": 2, "prefetch": 1}}
    )
    tokenizer, source = make_tokenizer(config.data), make_source(config.data)
    entries = [ObjectiveEntry(name="test_worker_head"), ObjectiveEntry(name="next_token")]
    arms = expand_arms(entries, tokenizer.specials, [str(path)])
    pool = open_pipeline(config.data, source, tokenizer, arms, np.array([0.5, 0.5]))
    try:
        batches = [pool.next_batch() for _ in range(2)]
    finally:
        pool.close()
    assert 0 in np.concatenate([b.arm_ids.ravel() for b in batches])


def test_every_built_in_objective_and_task_arm_can_be_sent_to_a_worker():
    """Every registered objective (defaults) and every task's task_format arm pickles and comes
    back working (a lambda anywhere in a Task would not)."""
    import pickle

    from birdie_ssm.objectives import registered_objectives
    from birdie_ssm.pipeline.workers import pickled
    from birdie_ssm.tasks import registered_tasks

    tokenizer = make_tokenizer(Config().data)
    # Built-ins only: other tests register plug-ins of their own in this process.
    builtin = [n for n, c in registered_objectives().items() if c.origin == "builtin"]
    tasks = [
        name
        for name, task in registered_tasks().items()
        if (task.item or task.document_item).__module__.startswith("birdie_ssm.")
    ]
    entries = [ObjectiveEntry(name=n) for n in builtin if n != "task_format"]
    entries += [ObjectiveEntry(name="task_format", params={"task": tasks})]
    arms = expand_arms(entries, tokenizer.specials, tokenizer=tokenizer)
    _, _, back = pickle.loads(pickled(quickstart_mixture, tokenizer, arms))
    assert [a.name for a in back] == [a.name for a in arms]
    rng, tokens = np.random.default_rng(0), np.arange(4000, dtype=np.int32) % 200
    for arm in back:
        assert arm.objective.sample(tokens, rng, 4000) is not None, arm.name
