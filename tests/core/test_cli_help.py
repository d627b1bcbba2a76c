"""Flags that override a dcloop.yaml field show that field's description as their help."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from dcloop import config
from dcloop.cli import app
from dcloop.cli._help import FieldHelp, field_help

runner = CliRunner()
WIDE = {"COLUMNS": "1000", "TERMINAL_WIDTH": "1000"}  # one line per flag


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        found.append(((*prefix, name), command))
        found += _commands(command, (*prefix, name))
    return found


def test_every_field_flag_resolves_and_its_command_shows_it() -> None:
    marked = 0
    for path, command in _commands(typer.main.get_command(app)):
        fields = [p for p in command.params if (getattr(p, "help", None) or "").startswith(field_help(""))]
        if not fields:
            continue
        assert isinstance(command, FieldHelp), (
            f"dcloop {' '.join(path)} must be registered with cls=FieldHelp"
        )
        fields_of = {p.name: p.help.removeprefix(field_help("")) for p in fields}
        result = runner.invoke(app, [*path, "--help"], env=WIDE)
        assert result.exit_code == 0, result.output
        shown = " ".join(result.output.split())
        for field in fields_of.values():
            assert f"{config.describe(field)} (dcloop.yaml: {field})" in shown, (path, field)
            marked += 1
    assert marked >= 20


def test_train_help_carries_the_schema_text() -> None:
    result = runner.invoke(app, ["train", "--help"], env=WIDE)
    assert "Peak learning rate. (dcloop.yaml: train.lr)" in " ".join(result.output.split())
