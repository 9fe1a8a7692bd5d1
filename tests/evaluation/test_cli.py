"""The evaluation verbs' error paths: one clear line on stderr, exit status 2, no traceback."""

import pytest

from birdie_ssm.cli import main


def _error(capsys, argv):
    """The exit status and stderr of ``birdie-ssm ARGV``."""
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "phonebook", "--checkpoint", "{missing}"], "does not exist"),
        (["eval", "phonebook", "--checkpoint", "{empty}"], "not a run directory"),
        (["eval", "phone-book", "--checkpoint", "{empty}"], "unknown task 'phone-book'"),
        (
            ["eval", "mqar", "--checkpoint", "{empty}", "--set", "pair=[4]"],
            "unknown setting 'pair' for task 'mqar'",
        ),
        (["eval", "mqar", "--checkpoint", "{empty}", "--set", "samples"], "key=value"),
        (["generate", "--checkpoint", "{missing}", "--prompt", "hi"], "does not exist"),
        (["experiment", "{missing}/exp.yaml"], "does not exist"),
    ],
)
def test_bad_requests_are_one_clear_line(argv, expected, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    paths = {"missing": str(tmp_path / "missing"), "empty": str(tmp_path / "empty")}
    code, err = _error(capsys, [a.format(**paths) for a in argv])
    assert code == 2 and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nrunz: []\n", "'runz'"),
        ("name: x\nruns: [{name: a}, {name: a}]\n", "distinct"),
        ("name: x\nruns: [{name: a, set: {train.step: 3}}]\n", "run 'a': unknown config key"),
        (
            "name: x\nruns: [{name: a}, {name: b, set: {data.seq_len: 128}}]\n",
            "differ in 'data'",
        ),
        (
            "name: x\nruns: [{name: a}]\ntasks: {phonebook: {sizes: [4]}}\n",
            "unknown setting 'sizes' for task 'phonebook'",
        ),
        ("name: x\nruns: [{name: a}]\ntasks: {trivia: {}}\n", "unknown task 'trivia'"),
        ("name: x\nruns: [{name: a, init_from: b}, {name: b}]\n", "name an earlier run"),
    ],
)
def test_bad_experiment_files_are_one_clear_line(text, expected, tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    code, err = _error(capsys, ["experiment", str(path), "--output", str(tmp_path / "out")])
    assert code == 2 and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
