"""The pipeline: exact resume (in-process and with workers), worker failures, odd documents."""

import numpy as np
import pytest

from birdie_ssm.config import Config, DataConfig, ObjectiveEntry
from birdie_ssm.errors import BirdieError
from birdie_ssm.objectives import expand_arms
from birdie_ssm.pipeline import Pipeline, open_pipeline, validation_batches
from birdie_ssm.pipeline.workers import PipelineWorkerError
from birdie_ssm.text.tokenizer import ByteTokenizer

ALL = [
    ObjectiveEntry(name="next_token"),
    ObjectiveEntry(name="prefix_lm"),
    ObjectiveEntry(name="infilling", params={"mask_rate": [0.15, 0.5], "length": "16-200"}),
    ObjectiveEntry(name="copying", params={"length": "8-100"}),
    ObjectiveEntry(name="deshuffling"),
    ObjectiveEntry(name="autoencoding", params={"shuffle": [False, True]}),
    ObjectiveEntry(name="selective_copying", params={"context_length": "64-160"}),
    ObjectiveEntry(name="associative_recall", params={"pairs": "4-12"}),
]


class OddDocuments:
    """Natural-ish text with empty, whitespace-only, tiny and long documents mixed in."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def __call__(self, index: int) -> str:
        if index == self.fail_at:
            raise RuntimeError(f"corrupt document {index}")
        kind = index % 6
        if kind == 0:
            return ""
        if kind == 1:
            return " \n\t "
        if kind == 2:
            return "ok"
        return f"Document {index}: " + "a kv store maps keys to values. " * (1 + index % 40)


def config(workers=0):
    cfg = Config()
    cfg.data.seq_len, cfg.data.batch_size, cfg.data.workers = 512, 3, workers
    cfg.data.prefetch, cfg.data.streams = 2, 2
    return cfg


class Source:
    def __init__(self, fail_at=None):
        self.train = OddDocuments(fail_at)
        self.val = OddDocuments()


def run(cfg, arms, source, *, before, after, switch):
    """Batches ``before`` a checkpoint, then ``after`` it with a mixture switch half-way."""
    tok = ByteTokenizer()
    pipe = open_pipeline(cfg.data, source, tok, arms, np.full(len(arms), 1 / len(arms)))
    try:
        for _ in range(before):
            pipe.next_batch()
        state = pipe.state_dict()
        out = [pipe.next_batch() for _ in range(after)]
        pipe.set_mixture(switch)
        out += [pipe.next_batch() for _ in range(after)]
    finally:
        pipe.close()
    return state, out


def resumed(cfg, arms, source, state, *, after, switch):
    tok = ByteTokenizer()
    pipe = open_pipeline(cfg.data, source, tok, arms, np.full(len(arms), 1 / len(arms)))
    try:
        pipe.load_state_dict(state)
        out = [pipe.next_batch() for _ in range(after)]
        pipe.set_mixture(switch)
        out += [pipe.next_batch() for _ in range(after)]
    finally:
        pipe.close()
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_stream_gives_identical_batches(workers):
    arms = expand_arms(ALL, ByteTokenizer().specials)
    switch = np.zeros(len(arms))
    switch[[2, 8]] = 0.5
    cfg = config(workers)
    state, expected = run(cfg, arms, Source(), before=3, after=3, switch=switch)
    got = resumed(cfg, arms, Source(), state, after=3, switch=switch)
    for a, b in zip(expected, got, strict=True):
        for key, value in a.as_dict().items():
            assert np.array_equal(value, b.as_dict()[key]), key
    assert set(np.unique(expected[-1].arm_ids)) - {-1} <= {2, 8}  # the switch reached workers
    assert len(set(np.unique(np.concatenate([b.arm_ids for b in expected])))) > 5


def test_every_objective_survives_odd_documents_in_process():
    tok = ByteTokenizer()
    arms = expand_arms(ALL, tok.specials)
    pipe = Pipeline(OddDocuments(), tok, arms, seq_len=512, batch_size=4, seed=3)
    seen = np.concatenate([pipe.next_batch().arm_ids.reshape(-1) for _ in range(25)])
    assert set(seen) - {-1} == set(range(len(arms)))


def test_a_failing_worker_surfaces_its_traceback_and_leaves_no_process():
    arms = expand_arms(ALL[:2], ByteTokenizer().specials)
    cfg = config(workers=2)
    pipe = open_pipeline(cfg.data, Source(fail_at=41), ByteTokenizer(), arms, np.array([0.5, 0.5]))
    with pytest.raises(PipelineWorkerError, match="corrupt document 41") as info:
        for _ in range(200):
            pipe.next_batch()
    assert "Traceback" in str(info.value)
    assert not any(p.is_alive() for p in pipe.processes)
    pipe.close()  # idempotent


def test_validation_sets_are_fixed_per_arm():
    tok = ByteTokenizer()
    arms = expand_arms(ALL, tok.specials)
    kw = dict(seq_len=256, batch_size=2, batches_per_arm=1, seed=5)
    a = validation_batches(OddDocuments(), tok, arms, **kw)
    b = validation_batches(OddDocuments(), tok, arms, **kw)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert np.array_equal(x[0].input_ids, y[0].input_ids)
        assert set(np.unique(x[0].arm_ids)) - {-1} == {i}


def test_an_arm_too_big_for_the_row_is_a_clear_error():
    from birdie_ssm.errors import BirdieError

    arms = expand_arms([ObjectiveEntry(name="selective_copying")], ByteTokenizer().specials)
    with pytest.raises(BirdieError, match="selective_copying.*raise data.seq_len"):
        Pipeline(OddDocuments(), ByteTokenizer(), arms, seq_len=128, batch_size=1, seed=0)


def test_a_killed_worker_is_reported_not_waited_for():
    arms = expand_arms(ALL[:2], ByteTokenizer().specials)
    pipe = open_pipeline(
        config(workers=2).data, Source(), ByteTokenizer(), arms, np.array([0.5, 0.5])
    )
    try:
        pipe.next_batch()
        pipe.processes[1].kill()
        with pytest.raises(PipelineWorkerError, match="(?s)data worker 1 failed.*exit code"):
            for _ in range(50):
                pipe.next_batch()
        assert not any(p.is_alive() for p in pipe.processes)
    finally:
        pipe.close()


def _shares(batches, n_arms):
    """Each arm's share of the target tokens (the loss's tokens) over ``batches``."""
    tokens = sum(np.bincount(b.arm_ids[b.loss_mask], minlength=n_arms) for b in batches)
    return tokens / tokens.sum()


TWO = [
    ObjectiveEntry(name="next_token"),
    ObjectiveEntry(name="selective_copying", params={"context_length": "64-160"}),
]


@pytest.mark.parametrize("workers", [0, 2])
def test_realised_token_share_tracks_the_requested_mixture(workers):
    # Next-token prediction fills a row's rest; selective copying has 16-token targets: drawn
    # at random per example, a 0.5/0.5 mixture realised about 0.97/0.03 of the target tokens.
    tok = ByteTokenizer()
    arms = expand_arms(TWO, tok.specials)
    cfg = config(workers)
    cfg.data.batch_size = 4
    pipe = open_pipeline(cfg.data, Source(), tok, arms, np.array([0.5, 0.5]))
    try:
        first = [pipe.next_batch() for _ in range(24)]
        pipe.set_mixture(np.array([0.8, 0.2]))  # the counts start afresh under a new mixture
        second = [pipe.next_batch() for _ in range(24)]
        state = pipe.state_dict()
    finally:
        pipe.close()
    np.testing.assert_allclose(_shares(first, 2), [0.5, 0.5], atol=0.04)
    np.testing.assert_allclose(_shares(second, 2), [0.8, 0.2], atol=0.04)
    counts = [s["arm_tokens"] for s in state["streams"]]
    assert all(sum(c) > 0 for c in counts)  # checkpoints carry the per-arm counts


def test_an_arm_at_zero_weight_is_never_drawn():
    tok = ByteTokenizer()
    arms = expand_arms(ALL, tok.specials)
    mixture = np.zeros(len(arms))
    mixture[[0, 3, 5]] = [0.2, 0.3, 0.5]
    pipe = Pipeline(OddDocuments(), tok, arms, seq_len=512, batch_size=4, seed=1, mixture=mixture)
    batches = [pipe.next_batch() for _ in range(15)]
    assert set(np.unique(np.concatenate([b.arm_ids.ravel() for b in batches]))) == {-1, 0, 3, 5}
    np.testing.assert_allclose(_shares(batches, len(arms))[[0, 3, 5]], [0.2, 0.3, 0.5], atol=0.05)


class Recording(OddDocuments):
    """OddDocuments that remember which indices were read (in-process only)."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[int] = set()

    def __call__(self, index: int) -> str:
        self.read.add(index)
        return super().__call__(index)


@pytest.mark.parametrize("workers", [0, 2])
def test_each_host_packs_its_rows_from_its_own_documents(workers):
    """Two hosts: each packs batch_size / 2 rows, from documents the other never reads, and the
    batches do not depend on the worker count."""
    tok = ByteTokenizer()
    arms = expand_arms(ALL[:3], tok.specials)
    mixture = np.full(len(arms), 1 / len(arms))

    def batches(index, documents, workers=workers):
        data = {"seq_len": 128, "batch_size": 4, "workers": workers, "streams": 2}
        source = Source()
        source.train = documents
        pipe = open_pipeline(DataConfig.model_validate(data), source, tok, arms, mixture,
                             process_index=index, process_count=2)  # fmt: skip
        try:
            return [pipe.next_batch().as_dict() for _ in range(3)]
        finally:
            pipe.close()

    reads = [Recording(), Recording()]
    hosts = [batches(i, reads[i]) for i in range(2)]
    for host in hosts:
        for batch in host:
            assert batch["input_ids"].shape == (2, 128)
            assert (batch["segment_ids"][:, 0] > 0).all()  # every row holds an example
    if workers == 0:
        assert reads[0].read and reads[1].read and not reads[0].read & reads[1].read
    else:  # the same batches as in-process
        for i in range(2):
            for got, want in zip(hosts[i], batches(i, OddDocuments(), 0), strict=True):
                np.testing.assert_array_equal(got["input_ids"], want["input_ids"])
    val = validation_batches(OddDocuments(), tok, arms, seq_len=128, batch_size=4,
                             batches_per_arm=1, seed=1, process_index=1,
                             process_count=2)  # fmt: skip
    assert val[0][0].input_ids.shape == (2, 128)


def test_a_batch_that_does_not_split_over_hosts_is_a_user_error():
    tok = ByteTokenizer()
    arms = expand_arms(ALL[:1], tok.specials)
    with pytest.raises(BirdieError, match="multiple of the 3 hosts"):
        Pipeline(OddDocuments(), tok, arms, seq_len=64, batch_size=4, seed=0, process_count=3)
