"""Config and plug-in errors a user can cause: one line that names the key and what it accepts,
in our words (no pydantic 'Value error,' prefix, no Python 'unexpected keyword argument', no
internal module names)."""

from types import SimpleNamespace

import pytest

from birdie_ssm.birdie import build_controller
from birdie_ssm.config import load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.experiments import load_spec
from birdie_ssm.objectives import describe_objectives
from birdie_ssm.objectives.base import _REGISTRY as OBJECTIVES
from birdie_ssm.plugins import import_module


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("eval.tasks.mqar.foo=1", "eval.tasks.mqar: unknown setting 'foo'"),
        ("eval.tasks.nope={}", "eval.tasks.nope: unknown task 'nope' (registered: phonebook,"),
        ("train.loggers=[nope]", "train.loggers: unknown logger 'nope' (registered: jsonl,"),
        ("model.mixer=lstm", "model.mixer: unknown mixer 'lstm' (registered:"),
        ("model.mixers.gated.conv_width=4", "model.mixers.gated: mixer 'gated' has no parameter"),
        ("model.mixers.gated.state_expansion=0", "model.mixers.gated: parameter 'state_expansion'"),
        ("data.corpus=files", "data.corpus is 'files' but data.files is empty"),
        ("model.block_pattern=RXA", "model.block_pattern holds one letter per block"),
        ("eval.tasks.mqar.pairs=[0]", "eval.tasks.mqar: invalid task settings: pairs must be"),
    ],
)
def test_checks_speak_in_our_words(override, expected):
    with pytest.raises(BirdieError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert message.startswith(expected)
    assert "Value error" not in message and "invalid value {" not in message
    assert "\n" not in message


def test_experiment_file_checks_speak_in_our_words(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("name: x\nseeds: [1, 1]\nruns: [{name: a}]\n")
    with pytest.raises(BirdieError) as info:
        load_spec(path)
    assert str(info.value).endswith("seeds must be distinct non-negative integers, got [1, 1]")
    assert "Value error" not in str(info.value)


def _arms(n: int = 2) -> list:
    return [SimpleNamespace(name=f"a{i}", objective_class=f"a{i}", weight=1.0) for i in range(n)]


def test_unknown_controller_parameter_names_the_accepted_ones():
    config = load_config(None, ["controller.params.flor=0.1"])
    with pytest.raises(BirdieError) as info:
        build_controller(config, _arms())
    message = str(info.value)
    assert message.startswith("controller 'birdie' has no parameter 'flor'; did you mean 'floor'?")
    assert "controller.params" in message and "warmup_steps" in message
    assert "unexpected keyword" not in message and "reward" not in message


def test_reward_in_controller_params_points_at_controller_reward():
    config = load_config(None, ["controller.params.reward=relative"])
    with pytest.raises(BirdieError, match=r"^controller.params.reward: .*controller.reward"):
        build_controller(config, _arms())


def test_a_py_plugin_is_shown_by_the_path_given(tmp_path):
    path = tmp_path / "my_objective.py"
    path.write_text(
        "from dataclasses import dataclass\n"
        "from birdie_ssm.objectives import Objective, register_objective\n"
        "@dataclass(frozen=True)\nclass C:\n    pass\n"
        "@register_objective('test_origin_probe')\nclass Probe(Objective):\n"
        "    '''A probe.'''\n    Config = C\n"
        "    def make(self, tokens, rng, budget):\n        return None\n"
    )
    try:
        origins = {d["name"]: d["origin"] for d in describe_objectives([str(path)])}
    finally:
        OBJECTIVES.pop("test_origin_probe", None)
    assert origins["test_origin_probe"] == str(path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("./nosuch.py", "'./nosuch.py' does not exist (give a module name or the path of an"),
        ("{tmp}", "is a directory"),
        ("{tmp}/notes.txt", "notes.txt' is not a .py file"),
    ],
)
def test_plugin_paths_say_what_is_wrong(name, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BirdieError) as info:
        import_module(name.format(tmp=tmp_path), what="objectives.modules")
    assert str(info.value).startswith("objectives.modules: ") and expected in str(info.value)
