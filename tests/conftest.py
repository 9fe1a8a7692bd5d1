"""Shared fixtures: tiny configs that compile and train in seconds on a 2-core CPU."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The suite's time is XLA compiling tiny programs (a model of width 32 runs in milliseconds), so
# the test process, and every process it starts (they inherit the environment), compiles for
# compile time rather than run time. Set before JAX is imported, which reads these once.
# - XLA optimises the generated machine code less (--xla_backend_optimization_level=0): the same
#   programs, compiled in about half the time, run slower. Not where a GPU is present: there
#   `-m gpu` runs and times real kernels.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "") and not (
    os.path.exists("/dev/nvidiactl")
):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
# - One compilation cache for the session (a fresh folder, removed at exit; the caller's own
#   JAX_COMPILATION_CACHE_DIR wins): the many tests that build the same tiny model or train step
#   in a new Trainer, a subprocess or a CLI call compile it once.
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    _xla_cache = tempfile.mkdtemp(prefix="birdie-tests-xla-")
    atexit.register(shutil.rmtree, _xla_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _xla_cache
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)

from birdie_ssm.config import Config  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402


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
