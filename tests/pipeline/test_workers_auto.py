"""``data.workers: auto`` (the default): decided once, by the backend and the CPUs, and recorded."""

import pytest
import yaml

from birdie_ssm.config import Config, load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.pipeline import resolve_workers, with_workers_resolved


@pytest.mark.parametrize(
    ("platform", "cpus", "want"),
    [("cpu", 16, 0), ("gpu", 16, 8), ("gpu", 64, 8), ("tpu", 6, 4), ("gpu", 2, 0), ("gpu", 1, 0)],
)
def test_auto_uses_the_spare_cores_of_an_accelerator_host(platform, cpus, want):
    assert resolve_workers("auto", platform=platform, cpus=cpus) == want
    assert resolve_workers(3, platform=platform, cpus=cpus) == 3  # a number is taken as given


def test_auto_is_the_default_and_resolves_to_a_number_here():
    assert Config().data.workers == "auto"
    config = with_workers_resolved(Config())
    assert config.data.workers == 0  # the tests run on a CPU backend
    assert Config().data.workers == "auto"  # the original is left as it was
    explicit = load_config(None, ["data.workers=2"])
    assert with_workers_resolved(explicit) is explicit


@pytest.mark.parametrize("value", ["many", -1, 257, 1.5])
def test_a_bad_worker_count_is_named(value):
    with pytest.raises(BirdieError, match="data.workers"):
        load_config(None, [f"data.workers={value}"])


def test_a_run_records_the_count_it_used(tmp_path):
    from birdie_ssm.train.trainer import Trainer
    from tests.conftest import tiny_config

    trainer = Trainer(tiny_config("data.workers=auto"), tmp_path)
    try:
        assert trainer.config.data.workers == 0
    finally:
        trainer.close()
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["data"]["workers"] == 0  # a resumed run reads this number, not "auto"


def test_an_experiment_rerun_reads_auto_as_the_recorded_count(tmp_path):
    """A run's config.yaml holds the count it resolved; rerunning the experiment (config still
    'auto') finds the same run, not 'a run with a different config'."""
    from birdie_ssm.config import dump_config
    from birdie_ssm.experiments.stages import DONE, train_run
    from birdie_ssm.pipeline import with_recorded_workers

    recorded = load_config(None, ["data.workers=6"])
    dump_config(recorded, tmp_path / "config.yaml")
    (tmp_path / DONE).write_text('{"steps": 1}')
    assert train_run(Config(), tmp_path) == {"steps": 1}
    assert with_recorded_workers(Config(), recorded).data.workers == 6
    explicit = load_config(None, ["data.workers=2"])
    assert with_recorded_workers(explicit, recorded) is explicit
    with pytest.raises(BirdieError, match="different config"):
        train_run(explicit, tmp_path)
