"""``data.workers: auto`` (the default): decided once, by the backend and the CPUs; not recorded."""

import pytest
import yaml

from birdie_ssm.config import Config, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.pipeline import resolve_workers


@pytest.mark.parametrize(
    ("platform", "cpus", "want"),
    [("cpu", 16, 0), ("gpu", 16, 8), ("gpu", 64, 8), ("tpu", 6, 4), ("gpu", 2, 0), ("gpu", 1, 0)],
)
def test_auto_uses_the_spare_cores_of_an_accelerator_host(platform, cpus, want):
    assert resolve_workers("auto", platform=platform, cpus=cpus) == want
    assert resolve_workers(3, platform=platform, cpus=cpus) == 3  # a number is taken as given


def test_auto_is_the_default():
    assert Config().data.workers == "auto"


@pytest.mark.parametrize("value", ["many", -1, 257, 1.5])
def test_a_bad_worker_count_is_named(value):
    with pytest.raises(BirdieError, match="data.workers"):
        load_config(None, [f"data.workers={value}"])


def test_a_run_keeps_auto_out_of_its_identity(tmp_path):
    """The worker count is decided where the run's data is built and never written back: the
    batches do not depend on it, so a run resumes with any count."""
    from birdie_ssm.train.trainer import Trainer
    from tests.helpers import tiny_config

    trainer = Trainer(tiny_config("data.workers=auto"), tmp_path)
    trainer.close()
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["data"]["workers"] == "auto"


def test_an_experiment_rerun_finds_its_run_whatever_the_worker_count(tmp_path):
    from birdie_ssm.config import dump_config
    from birdie_ssm.experiments.stages import DONE, train_run

    dump_config(load_config(None, ["data.workers=6"]), tmp_path / "config.yaml")
    (tmp_path / DONE).write_text('{"steps": 1}')
    assert train_run(Config(), tmp_path) == {"steps": 1}
    assert train_run(load_config(None, ["data.workers=2"]), tmp_path) == {"steps": 1}
    with pytest.raises(BirdieError, match="different config"):
        train_run(load_config(None, ["data.seq_len=128"]), tmp_path)
