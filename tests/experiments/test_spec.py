"""Experiment files: what each run's stages are configured with."""

import yaml

from birdie_ssm.experiments.spec import finetune_config, load_spec, run_configs
from tests.helpers import TINY


def _spec(tmp_path):
    shared = {}
    for assignment in [*TINY, "train.steps=4"]:
        key, _, value = assignment.partition("=")
        shared[key] = yaml.safe_load(value)
    spec = {
        "name": "staged",
        "shared": shared,
        "runs": [{"name": "ntp"}, {"name": "scratch", "pretrain": False}],
        "finetune": {"mixture": [{"name": "next_token"}], "steps": 4, "lr": 1e-3},
    }
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_spec(path), path


def test_command_overrides_reach_a_run_without_pretraining(tmp_path):
    spec, path = _spec(tmp_path)
    overrides = ["model.width=24", "train.steps=10"]
    pretrained = run_configs(spec, path, overrides)["ntp"]
    tuned = finetune_config(spec, path, spec.runs[0], pretrained, 0, overrides)
    scratch = finetune_config(spec, path, spec.runs[1], None, 0, overrides)
    # Both runs get the command's model; the control fine-tunes for the (overridden) 10
    # pretraining steps plus the stage's 4, the pretrained run for the stage's 4.
    assert pretrained.model.width == tuned.model.width == scratch.model.width == 24
    assert (pretrained.train.steps, tuned.train.steps, scratch.train.steps) == (10, 4, 14)
    # Without overrides the file's own values stand.
    plain = finetune_config(spec, path, spec.runs[1], None, 0)
    assert (plain.model.width, plain.train.steps) == (32, 8)


def test_the_command_line_beats_a_runs_own_set_for_every_run(tmp_path):
    """``--set model.bidirectional=none`` makes every run causal, the pretrain: false control
    too, though its own set says alternate; keys its set does not name keep the stage's."""
    spec, path = _spec(tmp_path)
    raw = yaml.safe_load(path.read_text())
    for run in raw["runs"]:
        run["set"] = {"model.bidirectional": "alternate"}
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(path)
    overrides = ["model.bidirectional=none", "train.steps=10"]
    pretrained = run_configs(spec, path, overrides)["ntp"]
    tuned = finetune_config(spec, path, spec.runs[0], pretrained, 0, overrides)
    scratch = finetune_config(spec, path, spec.runs[1], None, 0, overrides)
    assert pretrained.model.bidirectional == tuned.model.bidirectional == "none"
    assert scratch.model.bidirectional == "none"
    assert scratch.train.steps == 14  # the stage's own length, not the command's 10
    plain = finetune_config(spec, path, spec.runs[1], None, 0)
    assert plain.model.bidirectional == "alternate"
