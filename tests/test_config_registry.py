"""The run config composes the parts of its schema that components own and register through
``plugins`` (tests/test_layering.py proves config.py imports none of them)."""

import subprocess
import sys

import pytest

from birdie_ssm import plugins
from birdie_ssm.config import load_config
from birdie_ssm.errors import BirdieError
from birdie_ssm.train import loggers


def test_registrations_are_imported_before_the_first_check():
    """Importing config loads no component; validating a config imports the ones that register
    its checks (models, tasks, loggers), so no caller has to import them first."""
    code = (
        "import sys\n"
        "import birdie_ssm.config as c\n"
        "parts = ('birdie_ssm.models', 'birdie_ssm.tasks', 'birdie_ssm.train')\n"
        "assert not [m for m in sys.modules if m.startswith(parts)], 'imported too early'\n"
        "c.Config()\n"
        "assert {'birdie_ssm.models.registry', 'birdie_ssm.tasks', 'birdie_ssm.train.loggers'}"
        " <= sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_config_reads_what_the_components_register_now():
    """A logger registered after import is accepted at once (config holds no copy), and a check
    a component registers for a key is what config applies, its message under the key."""

    @loggers.register_logger("test_sink")
    def _sink(context):  # pragma: no cover - never opened
        raise AssertionError

    try:
        assert load_config(None, ["train.loggers=[test_sink]"]).train.loggers == [
            "jsonl",
            "test_sink",
        ]
    finally:
        loggers.LOGGERS.pop("test_sink")

    def no_tasks(name, settings):
        raise BirdieError(f"no task accepted here ({name})")

    original = plugins.config_check("eval.tasks")
    plugins.register_config_check("eval.tasks", no_tasks)
    try:
        with pytest.raises(BirdieError, match=r"^eval.tasks.mqar: no task accepted here \(mqar\)"):
            load_config()
    finally:
        plugins.register_config_check("eval.tasks", original)
    assert load_config().eval.tasks


def test_a_key_nobody_registered_is_a_programming_error():
    with pytest.raises(RuntimeError, match="no component registered a check for config key 'x.y'"):
        plugins.config_check("x.y")
