"""constraints.txt pins what the README's figures were measured with; pyproject keeps bounds."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_constraints_pin_every_runtime_and_test_dependency_within_pyproject_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    wanted = [Requirement(r) for r in [*project["dependencies"],
                                       *project["optional-dependencies"]["test"]]]  # fmt: skip
    assert "jaxlib" in pins and "tensorstore" in pins  # transitive ones too
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert pins[name] in requirement.specifier, (name, pins[name], requirement.specifier)
        # pyproject stays open upwards: lower bounds, never a pin
        assert all(s.operator == ">=" for s in requirement.specifier), requirement
    assert "birdie-ssm" not in pins  # the package itself comes from the checkout
