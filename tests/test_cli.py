import subprocess
import sys

import pytest

from birdie_ssm.cli import main


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "no.such.key=1"], "unknown config key 'no'"),
        (["--set", "train.steps=-5"], "train.steps"),
        (["--config", "missing.yaml"], "does not exist"),
        (["--set", "objectives.mixture.0.name=nope"], "unknown objective 'nope'"),
        (["--set", "objectives.mixture.2.params.mask_rat=0.2"], "did you mean 'mask_rate'"),
        (["--set", "objectives.mixture.2.params.mask_rate=2.0"], "mask_rate"),
        (["--set", "controller.name=oracle"], "unknown controller 'oracle'"),
        (
            ["--set", "data.corpus=files", "--set", "data.files=[/no/such/file.txt]"],
            "does not exist",
        ),
        (["--resume"], "holds no checkpoint"),
    ],
)
def test_bad_input_is_one_clear_line(args, expected, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "--run-dir", str(run_dir), *args])
    err = capsys.readouterr().err
    assert code != 0
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not run_dir.exists()


def test_cli_process_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "birdie_ssm.cli",
            "train",
            "--set",
            "train.steps=-5",
            "--run-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("birdie-ssm: error:") and "train.steps" in proc.stderr


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("x")
    assert main(["train", "--run-dir", str(run_dir)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run_dir / "keep.txt").read_text() == "x"


def test_objectives_lists_builtins(capsys):
    assert main(["objectives"]) == 0
    out = capsys.readouterr().out
    for name in ("next_token", "prefix_lm", "infilling", "mask_rate"):
        assert name in out
