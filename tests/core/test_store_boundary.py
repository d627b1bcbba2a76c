"""The store is one boundary: only ``dcloop/store`` speaks SQL.

Checked on the source (``ast``), so a lazy import inside a function counts as much as a top-level one.
Run alone: ``pytest tests/core/test_store_boundary.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "dcloop"
STORE = SRC / "store"
SQL_PACKAGES = ("sqlalchemy", "alembic")
# Store attributes that hand out connections: the query modules use them, nothing else does.
CONNECTIONS = ("engine", "transaction", "connect")


def _outside_store() -> list[Path]:
    files = [p for p in sorted(SRC.rglob("*.py")) if STORE not in p.parents]
    assert len(files) > 50
    return files


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC.parent)}:{line}"


@pytest.mark.parametrize("path", _outside_store(), ids=lambda p: str(p.relative_to(SRC)))
def test_nothing_outside_the_store_speaks_sql(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wrong = []
    for line, name in _imports(tree):
        if name.split(".")[0] in SQL_PACKAGES:
            wrong.append(f"{_where(path, line)} imports {name}")
        if name.startswith("dcloop.store._"):
            wrong.append(f"{_where(path, line)} imports the private {name}; use a public store module")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in CONNECTIONS
            and "store" in {getattr(node.value, "attr", None), getattr(node.value, "id", None)}
        ):
            wrong.append(f"{_where(path, node.lineno)} uses store.{node.attr}; call a store query module")
    assert wrong == []


def test_every_store_query_module_is_public_and_takes_the_store() -> None:
    """One public module per domain; each public function's first parameter is the Store."""
    modules = {p.stem for p in STORE.glob("*.py") if not p.stem.startswith("_")}
    assert {"datasets", "runs", "variants", "registry", "predictions", "turns"} <= modules
    for name in ("datasets", "runs", "variants", "registry", "turns"):
        tree = ast.parse((STORE / f"{name}.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                first = node.args.args[0]
                assert (first.arg, ast.unparse(first.annotation or ast.Constant(None))) == (
                    "store",
                    "Store",
                ), f"store/{name}.py: {node.name}() must take the Store first"
