"""`dcloop data ...` end to end: import a real Animal-MNIST subset, prepare, list, show, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from datagen import write_image_folder
from typer.testing import CliRunner

from dcloop.cli import app

runner = CliRunner()


def _json(args: list[str]) -> object:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _dcloop(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dcloop.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def test_import_prepare_list_show(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace.root)
    imported = _json(["data", "import", "animal-mnist", "--classes", "cat,dog"])
    assert imported["name"] == "animal-mnist-cat-dog"
    assert imported["classes"] == ["cat", "dog"]
    assert imported["counts"]["test"] == 397 and sum(imported["counts"].values()) == 1989
    assert imported["cleaning"]["duplicate"] == 11 and imported["cleaning"]["conflict"] == 0
    assert _json(["data", "prepare"])["version"] == imported["version"]
    (workspace.root / "dcloop.yaml").write_text("data:\n  image_size: 16\n", encoding="utf-8")
    resized = _json(["data", "prepare", "animal-mnist-cat-dog"])
    assert resized["shape"] == [1, 16, 16] and resized["version"] != imported["version"]
    listed = _json(["data", "list"])
    assert [v["version"] for v in listed] == [imported["version"], resized["version"]]
    assert _json(["data", "show", imported["version"][:10]])["version"] == imported["version"]
    assert _json(["data", "show", "animal-mnist-cat-dog"])["version"] == resized["version"]
    assert {"animal-mnist", "folder", "idx", "npz", "fortunes", "csv", "text-folder"} <= set(
        _json(["data", "sources"])
    )


def test_table_output_shows_counts_and_cleaning(
    workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(workspace.root)
    root = write_image_folder(tmp_path / "shapes", {"circle": 6, "square": 6})
    (root / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = runner.invoke(app, ["data", "import", str(root), "--name", "shapes"])
    assert result.exit_code == 0, result.output
    for text in ("shapes", "circle", "square", "undecodable", "broken.png", "duplicate"):
        assert text in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "import", "missing-folder/"], "error: Source path missing-folder/ does not exist."),
        (["data", "import", "animal-mnist", "--classes", "cat,dgo"], "Did you mean 'dog'?"),
        (["data", "import", "mnist"], "error: Unknown data source 'mnist'"),
        (
            ["data", "import", "empty"],
            "error: Source folder empty is empty. Expected empty/<class>/<image or .txt files>.",
        ),
        (["data", "import", "dcloop.yaml"], "error: Source dcloop.yaml is not a kind dcloop reads"),
        (["data", "show", "nope"], "error: No data set version 'nope'. See `dcloop data list`."),
    ],
)
def test_errors_are_one_line(workspace, args: list[str], message: str) -> None:
    (workspace.root / "empty").mkdir()
    result = _dcloop(workspace.root, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(workspace) -> None:
    result = _dcloop(workspace.root, "--debug", "data", "import", "animal-mnist", "--classes", "unicorn")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "DataError: Unknown class 'unicorn'" in result.stderr
