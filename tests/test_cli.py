import json
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
        (["--config", "."], "'.' is a directory, not a file"),
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
    if expected == "not valid UTF-8":
        assert f"'{corpus}'" in err  # which file


@pytest.mark.slow  # over 5 s here: runs in `pytest -m slow`
def test_bad_checkpoints_leave_the_run_as_it_was(tmp_path, capsys):
    from tests.helpers import TINY

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


# Runs each CLI call (one per line of stdin) with `import jax` failing, and so flax, optax and
# orbax: what these calls print must not need JAX.
_WITHOUT_JAX = """
import contextlib, io, sys
sys.modules["jax"] = None
from birdie_ssm.cli import main
for line in sys.stdin:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(line.split())
        except SystemExit as exc:
            code = exc.code
    print(line.strip(), code, len(out.getvalue()))
"""


def test_help_objectives_and_report_import_no_jax(tmp_path):
    records = [
        {"kind": "train", "step": 1, "loss": 5.0, "lr": 1e-3, "mixture": {"ntp": 1.0}},
        {"kind": "eval", "step": 2, "val_loss": {"ntp": 4.9}, "mixture": {"ntp": 1.0}},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    verbs = ["train", "eval", "generate", "objectives", "report", "experiment", "bench"]
    calls = ["--help", *(f"{v} --help" for v in verbs), "objectives", "report ."]
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_JAX], input="\n".join(calls),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.rsplit(" ", 2)[0] for line in lines] == calls
    for line in lines:
        call, code, printed = line.rsplit(" ", 2)
        assert code == "0" and int(printed) > 0, line
    assert (tmp_path / "losses.png").is_file()


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


@pytest.mark.parametrize("where", ["train_one", "validate"])  # the first step, or step 0's eval
def test_out_of_memory_is_one_line_and_leaves_no_run(tmp_path, capsys, monkeypatch, where):
    import jax

    from birdie_ssm.train.trainer import Trainer
    from tests.helpers import TINY

    def exhausted(self, *args):
        raise jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 68719476736 bytes."
        )

    monkeypatch.setattr(Trainer, where, exhausted)
    run_dir = tmp_path / "run"
    args = ["train", "--run-dir", str(run_dir), *(a for s in TINY for a in ("--set", s))]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "out of device memory at step 1 allocating 64.0 GiB" in err
    for knob in ("data.seq_len (64)", "data.batch_size (4)", "model.remat=true"):
        assert knob in err
    assert not run_dir.exists()  # a second try is not told "already holds a run"


def test_a_failing_benchmark_is_one_line(tmp_path, capsys, monkeypatch):
    from birdie_ssm import cli

    (tmp_path / "train.py").write_text(
        "import sys\nsteps = int(sys.argv[sys.argv.index('--steps') + 1])\nprint(1 / steps)\n"
    )
    monkeypatch.setattr(cli, "BENCH_DIR", tmp_path)
    assert main(["bench", "train", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "benchmark 'train' failed at train.py:3: ZeroDivisionError: division by zero" in err
    assert "--steps 0" in err


def test_experiment_output_that_cannot_be_written_is_one_line(
    tmp_path, capsys, monkeypatch, locked_dir
):
    import errno

    from birdie_ssm import experiments

    locked = locked_dir
    spec = "configs/experiments/retrieval_cpu.yaml"
    assert main(["experiment", spec, "--output", str(locked / "out")]) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "not writable" in err and err.count("\n") == 1, err
    assert not (locked / "out").exists()

    def denied(*args, **kwargs):  # what a write refused mid-run raises
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out" / "x"))

    monkeypatch.setattr(experiments, "run_experiment", denied)
    assert main(["experiment", spec, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "Permission denied" in err and str(tmp_path / "out" / "x") in err


def test_items_that_are_not_utf8_are_one_line_naming_the_file(tmp_path, capsys):
    items = tmp_path / "latin1.jsonl"
    items.write_bytes('{"prompt": "caf\u00e9", "answer": "x"}\n'.encode("latin-1"))
    code = main(["eval", "custom", "--items", str(items), "--checkpoint", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"items file '{items}' is not valid UTF-8" in err
