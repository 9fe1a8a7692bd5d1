from pathlib import Path

import pytest

from birdie_ssm.config import (
    Config,
    dump_config,
    load_config,
    quickstart_yaml,
    resume_changes,
    same_run,
)
from birdie_ssm.errors import BirdieError

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_file_is_generated_from_the_schema():
    """One source: the schema's defaults. configs/quickstart.yaml is their generated text (every
    key spelled out, with the schema's descriptions), not a second copy kept by hand."""
    import yaml

    written = (ROOT / "configs" / "quickstart.yaml").read_text(encoding="utf-8")
    assert written == quickstart_yaml(), (
        'configs/quickstart.yaml is stale; regenerate it: python -c "from birdie_ssm.config '
        "import quickstart_yaml; print(quickstart_yaml(), end='')\" > configs/quickstart.yaml"
    )
    assert yaml.safe_load(written) == Config().model_dump(mode="json")
    assert load_config(ROOT / "configs" / "quickstart.yaml") == Config()


def test_quickstart_needs_no_file_from_any_directory(tmp_path, monkeypatch):
    """`birdie-ssm train` with no --config reads no file, so an installed package (which ships
    no configs/) runs it from any working directory."""
    quickstart = Config()
    monkeypatch.chdir(tmp_path)
    opened = []
    read_text = Path.read_text

    def spy(self, *args, **kwargs):
        if self.suffix in (".yaml", ".yml"):
            opened.append(self)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", spy)
    assert load_config() == quickstart and not opened


def test_package_data_entries_match_files():
    """pyproject's package-data globs each match a file (a dead entry ships nothing)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = project["tool"]["setuptools"].get("package-data", {})
    for package, patterns in package_data.items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"package-data {package}/{pattern}"


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


def test_hybrid_model_from_overrides():
    cfg = load_config(
        None,
        ["model.mixer=rglru", "model.block_pattern=RRA", "model.mixers.attention.num_heads=8"],
    )
    assert cfg.model.layer_kinds() == ["rglru", "rglru", "attention", "rglru"]
    assert cfg.model.mixers == {
        "rglru": {"state_expansion": 1, "conv_width": 4},
        "attention": {"num_heads": 8},
    }
    # The Transformer baseline stays one switch away from the quickstart.
    assert load_config(None, ["model.arch=transformer"]).model.layer_kinds() == ["attention"] * 4


def test_mixer_parameters_live_under_mixers_only(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  mixer: rglru\n  conv_width: 4\n")
    with pytest.raises(BirdieError, match="unknown config key 'model.conv_width'"):
        load_config(path)


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
        ("model.mixer=lstm", "unknown mixer 'lstm'"),
        ("model.block_pattern=RXA", "model.block_pattern holds one letter per block"),
        ("model.mixers.gated.state_expansion=0", "model.mixers.gated: parameter 'state_expansion'"),
        ("model.mixers.gated.conv_width=4", "mixer 'gated' has no parameter 'conv_width'"),
        ("model.mixers.lstm.size=4", "unknown mixer 'lstm'"),
        ("model.remat=maybe", "model.remat"),
        ("train.steps", "key=value"),
        ("train.steps.x=1", "is a value, not a section"),
        ("objectives.mixture.9.weight=1", "indexes a list of 6 items"),
        ("objectives.mixture.9={name: x}", "does not index a list of 6 items"),
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


def test_one_set_of_resume_rules():
    # Speed settings are no part of a run's identity; length and reporting may change on resume;
    # anything that changes what the run learns may not.
    base = load_config(None)
    speed = load_config(
        None,
        ["data.workers=3", "data.prefetch=7", "data.cache_dir=/x", "model.scan_impl=reference"],
    )
    longer = load_config(None, ["train.steps=9999", "eval.every=7"])
    other = load_config(None, ["data.seq_len=96", "train.lr=0.1"])
    assert same_run(base, speed) and not same_run(base, longer) and not same_run(base, other)
    assert resume_changes(base, speed) == [] and resume_changes(base, longer) == []
    assert resume_changes(base, other) == ["data.seq_len", "train.lr"]
