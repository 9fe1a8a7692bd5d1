"""A run that cannot fit is refused in one line before anything is allocated."""

import jax
import pytest

from birdie_ssm.config import load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.pipeline import check_host_memory
from birdie_ssm.train.build import check_device_memory
from birdie_ssm.train.trainer import Trainer

GiB = 2**30


def test_a_batch_too_large_for_the_host_is_refused_before_the_pipeline(tmp_path):
    huge = load_config(None, ["data.batch_size=4096", "data.seq_len=65536"])
    with pytest.raises(BirdieError, match=r"^a batch of 4096 x 65536 tokens needs about .* GiB "
                       r"of host memory .*more than the 20.0 GiB available: lower "
                       r"data.batch_size or data.seq_len"):  # fmt: skip
        check_host_memory(huge.data, 20 * GiB)
    check_host_memory(load_config(None, []).data, 1 * GiB)  # the quickstart's batch fits
    check_host_memory(huge.data, None)  # unknown: no refusal
    with pytest.raises(BirdieError, match="host memory"):
        Trainer(load_config(None, ["data.batch_size=65536", "data.seq_len=65536"]),
                tmp_path / "run")  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_parameters_that_cannot_fit_name_the_model_not_the_batch():
    wide = load_config(None, ["model.width=65536"])
    with pytest.raises(BirdieError) as caught:
        check_device_memory(wide.model, 512, jax.devices())
    message = str(caught.value)
    assert "model.width (65536)" in message and "parameters" in message
    assert "seq_len" not in message and "batch_size" not in message
    check_device_memory(load_config(None, []).model, 512, jax.devices())
