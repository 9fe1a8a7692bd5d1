"""An experiment's summary: the table and the plots agree on the spread over seeds."""

import matplotlib.axes
import pytest

from birdie_ssm.evaluation.results import TaskResult
from birdie_ssm.experiments.records import RunRecord, SeedRecord
from birdie_ssm.experiments.summary import _plot_task, mean_std
from tests.helpers import tiny_config


def _record(values):
    record = RunRecord(tiny_config(), True)
    for seed, value in enumerate(values):
        result = TaskResult("mqar", "pairs", "accuracy", "prefix",
                            [{"pairs": 4, "accuracy": value}], {}, 10)  # fmt: skip
        record.seeds[seed] = SeedRecord(results={"mqar": result})
    return record


def test_plot_error_bars_are_the_tables_sample_std(tmp_path, monkeypatch):
    drawn = []
    original = matplotlib.axes.Axes.errorbar

    def errorbar(self, x, y, yerr=None, **kwargs):
        drawn.append(yerr)
        return original(self, x, y, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", errorbar)
    _plot_task(tmp_path / "mqar.png", "mqar", {"run": _record([0.2, 0.4])})
    # Two seeds 0.2 apart: the sample std (ddof 1) is 0.2 / sqrt(2); ddof 0 would give 0.1.
    assert list(drawn[0]) == [pytest.approx(0.1414, abs=1e-4)]
    assert mean_std([0.2, 0.4]) == "0.300 ± 0.141"
