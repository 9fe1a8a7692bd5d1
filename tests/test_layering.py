"""The package's imports run one way, down the layers of DESIGN.md, with no circles.

Every import anywhere in a module counts (a function-level import cannot dodge the rule), except
those under ``if TYPE_CHECKING:``, which never run. ``errors``, ``plugins`` and ``config`` are the
foundation every layer may use: the exception class (and the checks that raise it), the one
plug-in loader, and the typed schema of a run, which composes the components' own config types
(so ``config`` may read them, as DESIGN.md has it).
"""

import ast
from collections import defaultdict
from pathlib import Path

import birdie_ssm

ROOT = Path(birdie_ssm.__file__).parent
FOUNDATION = {"errors", "config", "plugins"}
# What each layer may import besides itself and the foundation.
ALLOWED = {
    "kernels": set(),
    "text": set(),
    "tasks": {"text"},
    "objectives": {"tasks", "text"},
    "pipeline": {"objectives", "tasks", "text"},
    "models": {"kernels"},
    "curriculum": set(),
    "train": {"pipeline", "objectives", "tasks", "text", "models", "kernels", "curriculum"},
    "evaluation": {
        "train",
        "pipeline",
        "objectives",
        "tasks",
        "text",
        "models",
        "kernels",
        "curriculum",
    },  # fmt: skip
    "experiments": {
        "evaluation",
        "train",
        "pipeline",
        "objectives",
        "tasks",
        "text",
        "models",
        "kernels",
        "curriculum",
    },  # fmt: skip
}
TOP = {"cli", "__init__", "__main__"}  # the command line and the package root may use anything


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    found = set()
    package = module.rsplit(".", 1)[0] if "." in module else ""
    if path.name == "__init__.py":
        package = module.removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
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
    ours = {i.removeprefix("birdie_ssm.") for i in found if i.startswith("birdie_ssm.")}
    return ours


def _layer(name: str) -> str:
    return name.split(".")[0]


def test_layers_import_only_downwards():
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        layer = _layer(module)
        if layer in TOP:
            continue
        assert layer in ALLOWED or layer in FOUNDATION, f"module '{module}' is in no layer"
        for target in _imports(path, module):
            other = _layer(target)
            if other == layer or other in FOUNDATION or other not in {*ALLOWED, *TOP}:
                continue
            if layer in {"errors", "plugins"} or (
                layer != "config" and other not in ALLOWED[layer]
            ):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles_between_modules():
    modules = _modules()
    names = {m.removesuffix(".__init__") for m in modules}
    graph = defaultdict(set)
    for module, path in modules.items():
        me = module.removesuffix(".__init__")
        for target in _imports(path, module):
            # ``from pkg import name`` may name a submodule or an attribute: keep what exists.
            if target in names and target != me and not me.startswith(f"{target}."):
                graph[me].add(target)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(names):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
