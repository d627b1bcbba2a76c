from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dcloop
from dcloop.cli import app
from dcloop.errors import NotFoundError
from dcloop.workspace import init_workspace, open_workspace

runner = CliRunner()


def test_init_creates_config_and_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "w"), "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert Path(info["config"]).is_file()
    assert (tmp_path / "w" / ".dcloop" / "dcloop.db").is_file()


def test_init_keeps_an_edited_config(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    (ws.root / "dcloop.yaml").write_text("name: mine\n")
    init_workspace(tmp_path)
    assert open_workspace(tmp_path).config.name == "mine"


def test_open_outside_a_workspace(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="dcloop init"):
        open_workspace(tmp_path)


def test_config_validate_cli(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("train: {epochs: 3}\n")
    ok = runner.invoke(app, ["config", "validate", str(good), "--format", "json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["config"]["train"]["epochs"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 0}\n")
    result = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "config", "validate", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "`train.epochs`" in result.stderr and "Got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 0}\n")
    result = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "--debug", "config", "validate", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_cli_import_stays_light() -> None:
    code = (
        "import sys, dcloop.cli; heavy = {'torch', 'onnxruntime', 'mlflow', 'optuna', 'sqlalchemy', 'numpy'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_resolves() -> None:
    for name in dcloop.__all__:
        assert getattr(dcloop, name) is not None, name
