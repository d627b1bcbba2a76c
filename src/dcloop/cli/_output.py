"""How the CLI prints: rich tables for people, JSON for scripts, errors as one line on stderr."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


class Format(enum.StrEnum):
    table = "table"
    json = "json"


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str), highlight=False)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_cell(v)) for v in row))  # plain text: a "[" in a file name is no markup
    console.print(table)


def print_mapping(title: str, data: dict[str, Any]) -> None:
    print_table(title, ["field", "value"], [[k, v] for k, v in data.items()])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def note(message: str) -> None:
    err_console.print(message, highlight=False)
