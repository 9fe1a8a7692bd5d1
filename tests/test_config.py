from pathlib import Path

import pytest

from birdie_ssm.config import Config, dump_config, load_config
from birdie_ssm.errors import BirdieError

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_file_is_the_default():
    assert load_config(ROOT / "configs" / "quickstart.yaml") == Config()


def test_override_parses_yaml_values():
    cfg = load_config(
        None,
        [
            "train.steps=7",
            "model.bidirectional=alternate",
            "data.files=[a.txt]",
            "data.corpus=files",
        ],
    )
    assert cfg.train.steps == 7
    assert cfg.model.bidirectional == "alternate"
    assert cfg.data.files == ["a.txt"]


def test_override_into_mixture_list():
    cfg = load_config(
        None, ["objectives.mixture.0.weight=2.5", "objectives.mixture.3={name: copying}"]
    )
    assert cfg.objectives.mixture[0].weight == 2.5
    assert cfg.objectives.mixture[3].name == "copying"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("no.such.key=1", "unknown config key 'no'"),
        ("train.stepz=5", "did you mean 'steps'"),
        ("train.steps=-5", "train.steps"),
        ("train.steps=many", "train.steps"),
        ("model.mixer=lstm", "'gated' or 'rglru'"),
        ("train.steps", "key=value"),
        ("train.steps.x=1", "is a value, not a section"),
        ("objectives.mixture.9.weight=1", "indexes a list of 3 items"),
        ("objectives.mixture.9={name: x}", "does not index a list of 3 items"),
    ],
)
def test_bad_overrides_name_the_key(override, expected):
    with pytest.raises(BirdieError) as info:
        load_config(None, [override])
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_key_in_file_suggests_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  widht: 64\n")
    with pytest.raises(BirdieError, match="did you mean 'width'"):
        load_config(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "model: [unclosed\n"])
def test_malformed_files(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(BirdieError):
        load_config(path)


def test_missing_file():
    with pytest.raises(BirdieError, match="does not exist"):
        load_config("nope.yaml")


def test_files_corpus_needs_files():
    with pytest.raises(BirdieError, match="data.files is empty"):
        load_config(None, ["data.corpus=files"])


def test_dump_round_trip(tmp_path):
    cfg = load_config(None, ["train.steps=11", "controller.name=exp3s"])
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
