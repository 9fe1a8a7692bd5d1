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
        (["--set", "objectives.mixture.3.params.span_lenght=3"], "did you mean 'span_length'"),
        (["--set", "objectives.mixture.3.params.delimiter_length=0"], "delimiter_length"),
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


def _snapshot(root):
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    )


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (b"", [], "is empty"),
        (b"\xff\xfe\x00 not utf-8 \xc3\x28\n", [], "not valid UTF-8"),
        (b"   \n\n  \n", [], "no non-empty documents"),
        (b'{"body": "x"}\n', ["--set", "data.text_field=text"], "not a column"),
        ("one document only, nothing to hold out.\n", [], "at least 2 are needed"),
        (
            ("a long enough document to train on. " * 20 + "\n\n") * 2,
            [
                "--set",
                "objectives.mixture=[{name: copying, params: {length: 200}}]",
                "--set",
                "data.seq_len=64",
            ],
            "copying",
        ),
    ],
)
def test_bad_corpus_and_impossible_lengths(tmp_path, capsys, content, args, expected):
    suffix = ".jsonl" if b"body" in (content if isinstance(content, bytes) else b"") else ".txt"
    corpus = tmp_path / f"corpus{suffix}"
    corpus.write_bytes(content if isinstance(content, bytes) else content.encode())
    run_dir = tmp_path / "run"
    code = main(["train", "--run-dir", str(run_dir), "--set", "data.corpus=files",
                 "--set", f"data.files=[{corpus}]", *args])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not run_dir.exists()


def test_bad_checkpoints_leave_the_run_as_it_was(tmp_path, capsys):
    from tests.conftest import TINY

    run_dir = tmp_path / "run"
    tiny = [
        arg for s in [*TINY, "train.steps=5", "train.checkpoint_every=5"] for arg in ("--set", s)
    ]
    assert main(["train", "--run-dir", str(run_dir), *tiny]) == 0
    capsys.readouterr()

    before = _snapshot(run_dir)
    assert (
        main(["train", "--run-dir", str(run_dir), "--resume", *tiny, "--set", "model.width=48"])
        == 2
    )
    err = capsys.readouterr().err
    assert "cannot change 'model.width'" in err and err.count("\n") == 1
    assert _snapshot(run_dir) == before

    for path in (run_dir / "checkpoints" / "5" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    before = _snapshot(run_dir)
    assert (
        main(["train", "--run-dir", str(run_dir), "--resume", *tiny, "--set", "train.steps=9"]) == 2
    )
    err = capsys.readouterr().err
    assert "damaged or incomplete" in err and err.count("\n") == 1 and "Traceback" not in err
    assert _snapshot(run_dir) == before

    assert main(["eval", "phonebook", "--checkpoint", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "damaged or incomplete" in err and err.count("\n") == 1
    assert _snapshot(run_dir) == before


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
