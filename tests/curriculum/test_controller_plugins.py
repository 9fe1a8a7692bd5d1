"""Controllers from outside the package: ``controller.modules`` and the entry-point group; the
configured mixture reaches a controller through its construction (``fixed`` keeps it)."""

import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest

from birdie_ssm.curriculum import controller as registry
from birdie_ssm.curriculum import make_controller
from birdie_ssm.errors import BirdieError
from birdie_ssm.train.metrics import read_metrics
from birdie_ssm.train.trainer import Trainer
from tests.helpers import tiny_config

THREE_STEPS = ("train.steps=3", "train.log_every=1", "eval.schedule=every", "eval.every=2")


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_a_controller_from_a_user_module_trains(tmp_path):
    config = tiny_config(
        *THREE_STEPS,
        "controller.name=test_greedy",
        "controller.modules=[tests.curriculum.custom_controller]",
        "controller.params={share: 0.7}",
    )
    trainer = Trainer(config, tmp_path / "run")
    trainer.fit()
    trainer.close()
    assert type(trainer.birdie.controller).__module__ == "tests.curriculum.custom_controller"
    assert trainer.birdie.controller.updates == [0, 2, 3]  # every 2 steps, and the last
    evals = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2, 3]
    assert max(evals[-1]["mixture"].values()) == pytest.approx(0.7 + 0.3 / len(trainer.arm_names))
    assert evals[-1]["controller"]["hardest"] in trainer.arm_names


def test_a_controller_from_a_py_file(tmp_path):
    path = tmp_path / "my_controller.py"
    path.write_text(
        "from birdie_ssm.curriculum import register_controller\n"
        "from birdie_ssm.curriculum.fixed import FixedController\n"
        "register_controller('test_file_fixed')(type('Mine', (FixedController,), {}))\n"
    )
    config = tiny_config("controller.name=test_file_fixed", f"controller.modules=[{path}]")
    from birdie_ssm.birdie import build_controller
    from birdie_ssm.objectives import expand_arms
    from birdie_ssm.text import make_tokenizer

    arms = expand_arms(config.objectives.mixture, make_tokenizer(config.data).specials)
    controller = build_controller(config, arms)
    weights = np.array([a.weight for a in arms])
    np.testing.assert_allclose(controller.initial_mixture(), weights / weights.sum())


def test_a_controller_from_an_entry_point(monkeypatch):
    sys.modules.pop("tests.curriculum.custom_controller", None)
    registry._CONTROLLERS.pop("test_greedy", None)
    advertised = EntryPoint(
        "greedy", "tests.curriculum.custom_controller", registry.ENTRY_POINT_GROUP
    )
    from birdie_ssm import plugins

    monkeypatch.setattr(plugins, "_loaded_groups", set())
    monkeypatch.setattr(
        plugins,
        "entry_points",
        lambda group: [advertised] if group == registry.ENTRY_POINT_GROUP else [],
    )
    controller = make_controller("test_greedy", ["a", "b"], ["a", "b"], share=1.0)
    np.testing.assert_allclose(controller.update(0, np.array([1.0, 3.0])), [0.0, 1.0])


def test_a_broken_module_is_a_user_error(tmp_path):
    config = tiny_config("controller.modules=[no_such_controller_module]")
    with pytest.raises(BirdieError, match="controller.modules: cannot import 'no_such"):
        Trainer(config, tmp_path / "run")


def test_fixed_keeps_the_configured_mixture_unless_given_weights():
    fixed = make_controller("fixed", ["a", "b"], ["a", "b"], mixture=[3.0, 1.0])
    np.testing.assert_allclose(fixed.initial_mixture(), [0.75, 0.25])
    given = make_controller("fixed", ["a", "b"], ["a", "b"], mixture=[3.0, 1.0], weights=[1, 1])
    np.testing.assert_allclose(given.initial_mixture(), [0.5, 0.5])
    learning = make_controller("exp3s", ["a", "b"], ["a", "b"], mixture=[3.0, 1.0])
    np.testing.assert_allclose(learning.initial_mixture(), [0.5, 0.5])  # starts uniform
