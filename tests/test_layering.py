"""The package's imports run one way, down the layers of docs/architecture.md, with no circles.

Every import anywhere in a module counts: a function-level (lazy) import, one under
``if TYPE_CHECKING:`` (a type-only dependency is still a dependency of the drawing), and a module
named in a string (``importlib.import_module("birdie_ssm...")``), so none can dodge the rule.
``errors``, ``plugins`` and ``config`` are the foundation every layer may use, and they import
nothing above themselves: ``config`` composes the parts of the schema that components register
through ``plugins`` (tests/test_config_registry.py), it does not reach up for them.
"""

import ast
from collections import defaultdict
from pathlib import Path

import birdie_ssm

ROOT = Path(birdie_ssm.__file__).parent
# The foundation, bottom up: what each of its modules may import.
FOUNDATION = {"errors": set(), "plugins": {"errors"}, "config": {"errors", "plugins"}}
# What each layer may import besides itself and the foundation.
BELOW_TRAIN = {"pipeline", "objectives", "tasks", "text", "models", "kernels", "curriculum"}
ALLOWED = {
    **FOUNDATION,
    "kernels": set(),
    "text": set(),
    "tasks": {"text"},
    "objectives": {"tasks", "text"},
    "pipeline": {"objectives", "tasks", "text"},
    "models": {"kernels"},
    "curriculum": set(),
    # The public Birdie class: the data and curriculum layers, no model (so no JAX).
    "birdie": {"pipeline", "objectives", "tasks", "text", "curriculum"},
    "train": {"birdie", *BELOW_TRAIN},
    "evaluation": {"birdie", "train", *BELOW_TRAIN},
    "experiments": {"birdie", "evaluation", "train", *BELOW_TRAIN},
}
TOP = {"cli", "__init__", "__main__"}  # the command line and the package root may use anything


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts)] = path
    return out


def _imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module of ours that ``source`` (module ``module``) imports, wherever it does."""
    found = set()
    package = module if is_package else (module.rsplit(".", 1)[0] if "." in module else "")
    tree = ast.parse(source)
    # A string standing alone as a statement (a docstring) names no import.
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
                base = f"birdie_ssm.{base}" if base else "birdie_ssm"
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and node.value.startswith("birdie_ssm.")
        ):
            found.add(node.value)  # a module imported by name; kept below if it exists
    return {i.removeprefix("birdie_ssm.") for i in found if i.startswith("birdie_ssm.")}


def _graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (``from pkg import name`` may name a submodule or
    an attribute: only names of real modules are kept)."""
    modules = _modules()
    names = {m.removesuffix(".__init__") for m in modules}
    graph = defaultdict(set)
    for module, path in modules.items():
        me = module.removesuffix(".__init__")
        source = path.read_text(encoding="utf-8")
        for target in _imports(source, me, path.name == "__init__.py"):
            while target not in names and "." in target:
                target = target.rsplit(".", 1)[0]  # an attribute of a module counts as it
            if target in names and target != me and not me.startswith(f"{target}."):
                graph[me].add(target)
    return graph


def _layer(name: str) -> str:
    return name.split(".")[0]


def _against_layering(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        layer = _layer(module)
        if layer in TOP:
            continue
        assert layer in ALLOWED, f"module '{module}' is in no layer"
        for target in targets:
            other = _layer(target)
            if other == layer or (other in FOUNDATION and layer not in FOUNDATION):
                continue
            if other not in ALLOWED[layer]:
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_layers_import_only_downwards():
    wrong = _against_layering(_graph())
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checks_see_lazy_typing_and_named_imports():
    """The reader finds imports inside functions, under TYPE_CHECKING and named in strings, and
    the checks flag a foundation module reaching up and a circle."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from birdie_ssm.train.build import Run\n"
        "def f():\n    from birdie_ssm.models.registry import get_mixer\n"
        "    import importlib\n    importlib.import_module('birdie_ssm.tasks')\n"
        "    '''birdie_ssm.evaluation: a docstring is no import'''\n"
    )
    assert _imports(source, "config") == {
        "train.build",
        "train.build.Run",
        "models.registry",
        "models.registry.get_mixer",
        "tasks",
    }
    assert _against_layering({"config": {"models.registry"}, "models.lm": {"config"}}) == [
        "config -> models.registry"
    ]
    assert _against_layering({"plugins": {"config"}}) == ["plugins -> config"]
    assert _cycles({"train.build": {"train.loading"}, "train.loading": {"train.build"}}) == [
        "train.build -> train.loading -> train.build"
    ]
