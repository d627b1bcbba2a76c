"""The import graph: every arrow points down DESIGN.md's layout, and no module import cycles.

Imports are read from the source (module level and inside functions alike: a lazy import is still
an arrow); only those under ``if TYPE_CHECKING:`` are left out, since they never run.
Run alone with: pytest tests/core/test_imports.py
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import dcloop

SRC = Path(dcloop.__file__).resolve().parent.parent  # the folder holding the dcloop package

# DESIGN.md's layout, in its order: cli, config, workspace, store, data, train, optimize, deploy,
# feedback, loop, cluster, plan, demo. "Imports point down this list's dependency order (cli and
# demo on top; store, config and small helpers at the bottom)": so config and the small top-level
# helpers form the lowest layer, the store and the workspace sit on them, the stages follow the
# loop they run (data -> train -> optimize -> deploy -> feedback -> loop), cluster and the planner
# above those, then the demo and the CLI. Lowest first; a module may import its own layer or below.
LAYERS: tuple[str, ...] = (
    "helpers",  # config.py and the top-level modules that are not a layout entry (errors, atomic, ...)
    "store",
    "workspace",
    "plan",  # formulas over helpers only: a training run can print the planner's answer for its own job
    "data",
    "train",
    "optimize",
    "deploy",
    "feedback",
    "loop",
    "cluster",
    "demo",
    "ui",  # the dashboard: reads what every stage recorded, so it sits above them all
    "cli",
)
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}


def layer(module: str) -> str:
    """The layout entry a dotted module name belongs to."""
    parts = module.split(".")
    if len(parts) == 1:  # the dcloop package itself: its re-exports load lazily, by name
        return "helpers"
    top = parts[1]
    if top == "demo" or top.startswith("_demo"):
        return "demo"
    return top if top in RANK and top != "helpers" else "helpers"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, package: bool) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import that runs, including those inside functions."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), module, package)
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if package else 0)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:  # `from pkg import sub` imports the submodule pkg.sub
                sub = f"{base}.{alias.name}"
                yield (sub if _is_module(sub) else base), node.lineno
        yield from _imports(node, module, package)


def import_graph() -> dict[str, set[tuple[str, int]]]:
    """dcloop module -> the dcloop modules it imports (with the line), TYPE_CHECKING blocks left out."""
    graph: dict[str, set[tuple[str, int]]] = {}
    for path in sorted((SRC / "dcloop").rglob("*.py")):
        name = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = _imports(tree, name, path.name == "__init__.py")
        graph[name] = {(target, line) for target, line in found if target.split(".")[0] == "dcloop"}
    return graph


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_layer() -> None:
    top = {p.name.removesuffix(".py") for p in (SRC / "dcloop").iterdir() if p.suffix == ".py" or p.is_dir()}
    named = {t for t in top if t in RANK} | {"demo"}
    assert {
        "cli",
        "store",
        "workspace",
        "data",
        "train",
        "optimize",
        "deploy",
        "feedback",
        "loop",
        "plan",
    } <= named
    assert layer("dcloop.demo") == layer("dcloop._demo_traffic") == "demo"
    assert layer("dcloop.config") == layer("dcloop.errors") == layer("dcloop") == "helpers"


def test_imports_point_down_the_layout() -> None:
    upward = [
        f"{source}:{line} imports {target} ({layer(source)} -> {layer(target)})"
        for source, targets in sorted(import_graph().items())
        for target, line in sorted(targets)
        if RANK[layer(target)] > RANK[layer(source)]
    ]
    assert upward == [], "imports that point up DESIGN.md's layout:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    edges = {source: {t for t, _ in targets if t != source} for source, targets in import_graph().items()}
    assert _cycles(edges) == []


def test_the_checker_sees_what_it_must() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from dcloop.errors import DcloopError\n"
        "if TYPE_CHECKING:\n    from dcloop.cli import app\n"
        "def later():\n    from dcloop.loop import _steps\n"
    )
    seen = {target for target, _ in _imports(tree, "dcloop.meter", False)}
    assert seen == {"typing", "dcloop.errors", "dcloop.loop._steps"}, "lazy imports count, TYPE_CHECKING not"
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_outside_the_store_imports_sqlalchemy() -> None:
    users = []
    for path in sorted((SRC / "dcloop").rglob("*.py")):
        name = _module_name(path)
        if layer(name) == "store":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        every = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        for node in every:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.split(".")[0] == "sqlalchemy" for n in names):
                users.append(f"{name}:{node.lineno}")
    assert users == []


# Packages whose __init__ is the public API and every other module private; store/ is the exception
# DESIGN.md names: one public query module per domain.
PRIVATE_PACKAGES = ("cli", "data", "train", "optimize", "deploy", "feedback", "loop", "plan", "ui")


def test_package_modules_are_private() -> None:
    public = [
        f"dcloop.{package}.{path.stem}"
        for package in PRIVATE_PACKAGES
        for path in sorted((SRC / "dcloop" / package).glob("*.py"))
        if not path.stem.startswith("_")
    ]
    assert public == [], "modules besides __init__ must be _private (export their API from __init__)"
