"""pyproject.toml's extras name what their packages provide."""

import re
import tomllib
from importlib.metadata import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_cuda_extra_installs_a_cuda_jax():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    (requirement,) = extras["cuda"]
    name, jax_extra = re.match(r"([\w-]+)\[([\w-]+)\]", requirement).groups()
    assert name == "jax" and jax_extra.startswith("cuda")
    assert jax_extra in metadata("jax").get_all("Provides-Extra")
    plugin = [r for r in metadata("jax").get_all("Requires-Dist") if f'extra == "{jax_extra}"' in r]
    assert any(r.startswith("jax-cuda") for r in plugin), plugin
