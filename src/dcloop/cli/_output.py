"""How the CLI prints: rich tables for people, JSON for scripts, errors as one line on stderr."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import PurePath
from typing import Any

from rich import box
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
    """A table that reads at 80 columns: ids cut to 12 characters and times to the second, neither
    (nor a number) split across lines; other text wraps within what is left."""
    cells = [[_cell(v) for v in row] for row in rows]
    headers = [name.replace("_", " ") for name in columns]  # headers wrap at words, not mid-word
    # no vertical rules: two spaces between columns leave room for more columns at 80
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for header, (low, high) in zip(headers, _widths(headers, cells, console.width), strict=True):
        table.add_column(header, overflow="fold", min_width=low, max_width=high)
    for row in cells:
        table.add_row(*(Text(c) for c in row))  # plain text: a "[" in a file name is no markup
    console.print(Text(title, style="italic"), soft_wrap=True)  # never squeezed to the table's width
    console.print(table)


def _widths(headers: list[str], cells: list[list[str]], width: int) -> list[tuple[int | None, int | None]]:
    """(min, max) width of each column: ids, times and numbers keep their whole width (their header
    may wrap); when the table is wider than ``width``, the other columns give way first, widest first."""
    columns = [[row[i] for row in cells if i < len(row)] for i in range(len(headers))]
    # a column gives way no narrower than its longest word up to 8 characters, header or cell: a
    # short word ("distill", "finished") is not split across lines
    word = [
        max((len(w) for text in (h, *col) for w in text.split()), default=0)
        for h, col in zip(headers, columns, strict=True)
    ]
    whole = [bool(col) and all(_WHOLE.match(c) or not c for c in col) for col in columns]
    natural = [max([len(headers[i]), *map(len, col)]) for i, col in enumerate(columns)]
    floor = [
        max([3, min(word[i], 8), *map(len, col)]) if w else min(natural[i], max(min(word[i], 8), 4))
        for i, (col, w) in enumerate(zip(columns, whole, strict=True))
    ]
    sized = list(natural)
    excess = sum(sized) + 2 * (len(headers) - 1) - width
    for give_way in (False, True):  # text columns first; a number's header only when still too wide
        while excess > 0:
            room = [k for k in range(len(sized)) if whole[k] == give_way and sized[k] > floor[k]]
            if not room:
                break
            i = max(room, key=lambda k: sized[k] - floor[k])
            sized[i] -= 1
            excess -= 1
    return [(n, n) if w else (None, n) for n, w in zip(sized, whole, strict=True)]


def print_mapping(title: str, data: dict[str, Any]) -> None:
    """Fields and values; file paths go below the table, one per line, whole (to copy or click)."""
    paths = {k: v for k, v in data.items() if _is_path(v)}
    rows = [[k, v] for k, v in data.items() if k not in paths]
    if rows or not paths:
        print_table(title, ["field", "value"], rows)
    else:  # only paths: the title, then one whole path a line
        console.print(Text(title, style="italic"), soft_wrap=True)
    for key, path in paths.items():
        console.print(f"{key}: {path}", highlight=False, markup=False, soft_wrap=True)


_WHOLE = re.compile(r"^[0-9a-f]{12}( \*)?$|^\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?$|^[-+.\deE]{1,10}$")
_ID = re.compile(r"^[0-9a-f]{32}$|^[0-9a-f]{64}$")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d|Z)?$")


def _is_path(value: Any) -> bool:
    if isinstance(value, PurePath):
        return True
    return isinstance(value, str) and value.startswith(("/", "~/", "./")) and "\n" not in value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
        return f"{value:.0f}" if "e+" in text and abs(value) < 1e15 else text  # 14070, not 1.407e+04
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, str):
        if _ID.match(value):
            return value[:12]  # every command takes a unique prefix; --format json has the whole id
        time = _TIME.match(value)
        if time:
            return f"{time[1]} {time[2]}"
    return "" if value is None else str(value)


def note(message: str) -> None:
    """One line for a person; a message holding a file path is never folded (the path stays whole)."""
    err_console.print(message, highlight=False, soft_wrap=_PATH_IN.search(message) is not None)


_PATH_IN = re.compile(r"(^|\s)(/|~/|\./)\S")
