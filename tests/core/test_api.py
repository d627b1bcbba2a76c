"""The public API does not surprise: names keep their meaning whatever was imported before, and
functions that take a workspace folder take a str as well as a Path."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import dcloop


@pytest.mark.parametrize("setup", ["import dcloop", "import dcloop, dcloop.optimize, dcloop.train._run"])
def test_subpackage_attributes_do_not_change_with_import_order(setup: str) -> None:
    """``dcloop.optimize`` is the subpackage on first access and after (each case in a fresh process)."""
    code = (
        f"{setup}, types\n"
        "a = dcloop.optimize; b = dcloop.optimize\n"
        "assert isinstance(a, types.ModuleType) and a is b, a\n"
        "assert a.optimize.__module__ == 'dcloop.optimize._optimize'\n"
        "assert dcloop.train.train.__module__ == 'dcloop.train._run'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "package", ["dcloop", "dcloop.train", "dcloop.deploy", "dcloop.optimize", "dcloop.loop"]
)
def test_no_public_name_is_also_a_submodule(package: str) -> None:
    """A lazily exported name that is also a submodule would turn into the module once imported."""
    module = importlib.import_module(package)
    folder = Path(module.__file__).parent
    clash = [n for n in module.__all__ if (folder / f"{n}.py").is_file() or (folder / n).is_dir()]
    assert clash == []


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'dcloop' has no attribute 'nope'"):
        dcloop.nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"module 'dcloop\.deploy' has no attribute 'nope'"):
        dcloop.deploy.nope  # noqa: B018


def test_workspace_functions_take_str_paths(tmp_path: Path) -> None:
    made = dcloop.init_workspace(str(tmp_path / "w"))
    opened = dcloop.open_workspace(str(tmp_path / "w"))
    assert made.root == opened.root == (tmp_path / "w").resolve()
    assert dcloop.open_workspace(tmp_path / "w").root == made.root
