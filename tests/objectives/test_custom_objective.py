"""A custom objective from the user's own module runs exactly like a built-in one."""

import numpy as np

from birdie_ssm.config import Config, ObjectiveEntry
from birdie_ssm.objectives import describe_objectives, expand_arms
from birdie_ssm.pipeline import open_pipeline, validation_batches
from birdie_ssm.text.corpus import make_source
from birdie_ssm.text.tokenizer import ByteTokenizer

MODULE = "tests.objectives.custom_objective"


def test_custom_objective_runs_through_arms_pipeline_and_validation():
    config = Config()
    config.data.seq_len = 128
    config.data.batch_size = 4
    config.objectives.modules = [MODULE]
    config.objectives.mixture = [
        ObjectiveEntry(name="test_reverse", params={"length": [8, 16]}),
        ObjectiveEntry(name="next_token"),
    ]
    tokenizer, source = ByteTokenizer(), make_source(config.data)
    arms = expand_arms(config.objectives.mixture, tokenizer.specials, config.objectives.modules)
    assert [a.name for a in arms] == [
        "test_reverse[length=8]",
        "test_reverse[length=16]",
        "next_token",
    ]
    pipe = open_pipeline(config.data, source, tokenizer, arms, np.array([0.5, 0.5, 0.0]))
    batch = pipe.next_batch()
    row, seg = batch.input_ids[0], batch.segment_ids[0]
    first = row[seg == 1]
    sep = np.flatnonzero(first == tokenizer.specials.sep)[0]
    text = first[:sep][first[:sep] < 256]
    assert np.array_equal(first[sep + 1 : -1], text[::-1])  # the target is the reversed input
    assert set(np.unique(batch.arm_ids)) <= {-1, 0, 1}
    val = validation_batches(
        source.val, tokenizer, arms, seq_len=128, batch_size=2, batches_per_arm=1, seed=1
    )
    assert set(np.unique(val[1][0].arm_ids)) - {-1} == {1}
    origin = {d["name"]: d["origin"] for d in describe_objectives()}["test_reverse"]
    assert origin.endswith("custom_objective")
