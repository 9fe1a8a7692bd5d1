"""Shared fixtures: tiny configs that compile and train in seconds on a 2-core CPU."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from birdie_ssm.config import Config, load_config

TINY = [
    # The test suite's own mixture and model, fixed here so that tuning the quickstart (which
    # Config() is) does not change what every test exercises.
    "model.bidirectional=none",
    "objectives.mixture=[{name: next_token}, {name: prefix_lm}, "
    "{name: infilling, params: {mask_rate: [0.15, 0.5], mean_span: 3}}]",
    "controller.name=birdie",
    "train.lr=0.003",
    "train.weight_decay=0.1",
    "eval.scale=0.2",
    "model.width=32",
    "model.depth=2",
    "data.seq_len=64",
    "data.batch_size=4",
    "data.val_batches_per_arm=1",
    "data.workers=0",  # no worker processes even where 'auto' would start some (a GPU host)
    "train.steps=30",
    "train.warmup_steps=5",
    "train.log_every=5",
    "train.checkpoint_every=10",
    "train.progress=false",
]


def tiny_config(*overrides: str) -> Config:
    """The quickstart shrunk to a toy size, with extra ``key=value`` overrides."""
    return load_config(None, [*TINY, *overrides])


@pytest.fixture(scope="session", autouse=True)
def token_cache_in_tmp(tmp_path_factory):
    """Every token cache the suite builds (CLI subprocesses included, which inherit the
    environment) goes to a temporary folder, never ``~/.cache``. A test that wants another place
    sets ``data.cache_dir`` or ``BIRDIE_CACHE`` itself (``monkeypatch.setenv`` wins over this)."""
    before = os.environ.get("BIRDIE_CACHE")
    os.environ["BIRDIE_CACHE"] = str(tmp_path_factory.mktemp("birdie-cache"))
    yield
    if before is None:
        os.environ.pop("BIRDIE_CACHE", None)
    else:
        os.environ["BIRDIE_CACHE"] = before


@pytest.fixture
def tiny() -> Config:
    return tiny_config()


@pytest.fixture
def locked_dir(tmp_path, monkeypatch):
    """An existing folder the code under test must treat as read-only (``os.access`` says so:
    as root, permission bits alone would not stop a write)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m: False if str(p) == str(locked) else real_access(p, m)
    )
    return locked
