"""A run's life from the command line: names, stored paths, resume with the run's own config,
unwritable directories, and objective modules given by name or path."""

import os

import pytest
import yaml

from birdie_ssm.cli import main
from tests.helpers import TINY

TINY_ARGS = [a for s in [*TINY, "train.steps=3", "train.checkpoint_every=3"] for a in ("--set", s)]
CORPUS = "".join(
    f"Document {i}: the quick brown fox jumps over the lazy dog.\n\n" for i in range(60)
)


@pytest.fixture(scope="module")
def files_run(tmp_path_factory):
    """A tiny run on a local corpus given by a relative path, trained from its own folder."""
    root = tmp_path_factory.mktemp("files_run")
    (root / "corpus.txt").write_text(CORPUS)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = main(["train", "--run-dir", "myrun", *TINY_ARGS, "--set", "data.corpus=files",
                     "--set", "data.files=[corpus.txt]"])  # fmt: skip
    finally:
        os.chdir(cwd)
    assert code == 0
    return root / "myrun"


@pytest.mark.slow  # trains and resumes through the CLI
def test_run_is_named_after_its_dir_and_stores_resolved_paths(files_run):
    saved = yaml.safe_load((files_run / "config.yaml").read_text())
    assert saved["name"] == "myrun"
    assert saved["data"]["files"] == [str(files_run.parent / "corpus.txt")]


@pytest.mark.slow  # trains and resumes through the CLI
def test_resume_without_config_continues_the_run_as_configured(files_run, capsys):
    # A cosine run's schedule is fitted to its length: extending it needs --allow-lr-change.
    code = main(["train", "--run-dir", str(files_run), "--resume", "--set", "train.steps=5",
                 "--allow-lr-change"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "from step 3" in out and "(--allow-lr-change)" in out
    saved = yaml.safe_load((files_run / "config.yaml").read_text())
    assert saved["train"]["steps"] == 5 and saved["data"]["corpus"] == "files"


@pytest.mark.slow  # trains and resumes through the CLI
def test_resume_refuses_changes_to_what_the_run_learns(files_run, capsys):
    before = (files_run / "config.yaml").read_text()
    code = main(["train", "--run-dir", str(files_run), "--resume", "--set", "model.width=64"])
    err = capsys.readouterr().err
    assert code == 2 and "'model.width'" in err and "train.steps" in err
    assert err.count("\n") == 1 and (files_run / "config.yaml").read_text() == before


def test_run_is_named_after_its_config_file(tmp_path, monkeypatch, capsys):
    config = tmp_path / "my_experiment.yaml"
    config.write_text("train: {steps: 1}\n")
    monkeypatch.chdir(tmp_path)
    # An unknown key fails before anything is written; the message shows the default run dir.
    code = main(["train", "--config", str(config), "--set", "train.stepz=1"])
    assert code == 2 and not (tmp_path / "runs").exists()
    from birdie_ssm.cli import _parser, _train_config

    args = _parser().parse_args(["train", "--config", str(config)])
    assert _train_config(args)[0].name == "my_experiment"
    assert str(_train_config(args)[1]) == os.path.join("runs", "my_experiment")


def test_unwritable_run_dir_is_one_line_and_nothing_is_written(tmp_path, capsys, locked_dir):
    locked = locked_dir
    code = main(["train", "--run-dir", str(locked / "run"), *TINY_ARGS])
    err = capsys.readouterr().err
    assert code == 2 and "not writable" in err and err.count("\n") == 1
    assert list(locked.iterdir()) == []
    code = main(["report", str(locked)])
    assert code == 2 and "not writable" in capsys.readouterr().err


MODULE = '''
from dataclasses import dataclass
from birdie_ssm.objectives import Objective, register_objective

@dataclass(frozen=True)
class EchoConfig:
    length: int = 8

@register_objective("{name}")
class Echo(Objective):
    """Repeat the input."""
    Config = EchoConfig
    def min_budget(self):
        return 2 * self.config.length + 1
    def make(self, tokens, rng, budget):
        n = self.config.length
        return (tokens[:n], tokens[:n], tokens[n:]) if len(tokens) >= n else None
'''


def test_module_by_name_from_the_working_directory_or_by_path(tmp_path, monkeypatch, capsys):
    (tmp_path / "cwd_objectives.py").write_text(MODULE.format(name="echo_cwd"))
    (tmp_path / "by_path.py").write_text(MODULE.format(name="echo_path"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])
    assert main(["objectives", "--module", "cwd_objectives"]) == 0
    assert "echo_cwd" in capsys.readouterr().out
    assert main(["objectives", "--module", "./by_path.py"]) == 0
    assert "echo_path" in capsys.readouterr().out
    assert main(["objectives", "--module", "./missing.py"]) == 2
    err = capsys.readouterr().err
    assert "'./missing.py' does not exist" in err and err.count("\n") == 1


@pytest.mark.slow  # trains and resumes through the CLI
def test_damaged_checkpoint_names_the_intact_one_and_resume_from_uses_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    steps = ["train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=3"]
    args = [a for s in [*TINY, *steps] for a in ("--set", s)]
    assert main(["train", "--run-dir", str(run_dir), *args]) == 0
    for path in (run_dir / "checkpoints" / "4").rglob("*"):
        if path.is_file() and "state" in path.parts:
            path.write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run_dir), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint 4" in err and "checkpoint 2 is intact" in err and "--resume-from 2" in err
    assert err.count("\n") == 1 and "<bound method" not in err
    assert main(["train", "--run-dir", str(run_dir), "--resume-from", "2"]) == 0
    out = capsys.readouterr().out
    assert "removed checkpoints 4" in out and "from step 2" in out and "trained to step 4" in out
