"""benchmarks/compile.py: one row of compile and step times, looped against scanned layers."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import load_benchmark


@pytest.mark.slow  # compiles four train steps
def test_one_depth_row_looped_and_scanned(monkeypatch, capsys):
    compile_bench = load_benchmark("compile")
    monkeypatch.setattr(
        sys, "argv", ["compile.py", "--depths", "4", "--steps", "1", "--set", "data.seq_len=64"]
    )
    compile_bench.main()
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[0] == "4"  # two periods of the alternating gated layers: scanned
    compile_loop, compile_scan, step_loop, step_scan = (
        float(row[i].rstrip("sm")) for i in (1, 2, 4, 5)
    )
    assert min(compile_loop, compile_scan, step_loop, step_scan) > 0
    assert float(row[3].rstrip("x")) > 0 and float(row[6].rstrip("x")) > 0


def test_bad_depths_are_one_line(monkeypatch, capsys):
    compile_bench = load_benchmark("compile")
    monkeypatch.setattr(sys, "argv", ["compile.py", "--depths", "a,b"])
    with pytest.raises(SystemExit):
        compile_bench.main()
    assert "--depths is a comma list of integers" in capsys.readouterr().err
