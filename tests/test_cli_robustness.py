"""The command line under an interrupted experiment and a reader that goes away."""

import os
import signal
import sys

from birdie_ssm.cli import main
from birdie_ssm.train.trainer import Interrupted


def test_an_interrupted_experiment_says_to_rerun_the_command(monkeypatch, capsys):
    def stopped(*args, **kwargs):
        raise Interrupted(signal.SIGTERM, 7)

    monkeypatch.setattr("birdie_ssm.experiments.run_experiment", stopped)
    assert main(["experiment", "exp.yaml"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM at step 7" in err and "`birdie-ssm experiment` command again" in err
    assert "--resume" not in err and err.count("\n") == 1


def test_a_closed_pipe_ends_quietly(monkeypatch):
    """`birdie-ssm objectives | head -1`: the reader is gone; no BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)
    monkeypatch.setattr(sys, "stdout", os.fdopen(write, "w", buffering=1))
    assert main(["objectives"]) == 128 + signal.SIGPIPE
    print("more")  # what follows (and the flush at exit) goes nowhere, quietly
