"""Text tables: CSV/TSV, JSONL and Parquet files with a text and a label column.

A row that cannot be decoded as UTF-8, or has no label, is quarantined with its reason and the import
goes on; a table that cannot be parsed (a broken row, a missing column, a text that is no string)
stops the import with one line naming the file, the line and the field, before anything is written.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dcloop.data._intake import SOURCES, TEXT, Intake
from dcloop.data._text_sources import Rows, to_intake
from dcloop.errors import DataError, suggest

TABLE_KINDS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def _column(header: Sequence[str], name: str, path: Path, role: str) -> int:
    if name in header:
        return list(header).index(name)
    flag = "--text-column" if role == "text" else "--label-column"
    raise DataError(
        f"{path} has no column {name!r} (the {role} column; set it with {flag}). "
        f"Columns: {', '.join(map(repr, header)) or 'none'}.{suggest(name, header)}"
    )


def _decoded(value: str) -> bool:
    """False when reading with surrogateescape left undecodable bytes in ``value``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextmanager
def _large_fields() -> Iterator[None]:
    """csv refuses fields over 128 KiB by default; a long document is a valid text."""
    previous = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _read_delimited(path: Path, delimiter: str, text_column: str, label_column: str) -> Rows:
    rows = Rows()
    with _large_fields(), path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise DataError(
                    f"{path} is empty; expected a header row naming {text_column!r} and {label_column!r}."
                )
            t, lab = _column(header, text_column, path, "text"), _column(header, label_column, path, "label")
            line = reader.line_num + 1  # where the next row starts (a quoted field may span lines)
            for row in reader:
                line, start = reader.line_num + 1, line
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path} line {start}: expected {len(header)} fields like the header, got {len(row)}."
                    )
                name = f"{path.name}:{start}"
                if not (_decoded(row[t]) and _decoded(row[lab])):
                    rows.quarantined.append(("undecodable", name, "not valid UTF-8"))
                    continue
                rows.add(row[t], row[lab], name, label_column)
        except csv.Error as exc:
            raise DataError(f"{path} line {reader.line_num}: not valid CSV ({exc}).") from None
    return rows


@SOURCES.register("csv")
def csv_table(
    location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
) -> Intake:
    """A CSV file with a header row: a text column and a label column (--text-column, --label-column)."""
    assert location is not None
    return to_intake(
        _read_delimited(location, ",", text_column, label_column), classes, str(location), label_column
    )


@SOURCES.register("tsv")
def tsv_table(
    location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
) -> Intake:
    """A tab-separated file with a header row: a text column and a label column."""
    assert location is not None
    return to_intake(
        _read_delimited(location, "\t", text_column, label_column), classes, str(location), label_column
    )


def _json_rows(path: Path, text_column: str, label_column: str) -> Rows:
    rows, fields = Rows(), Counter[str]()
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        name = f"{path.name}:{number}"
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            rows.quarantined.append(("undecodable", name, f"not valid UTF-8 (byte {exc.start})"))
            continue
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path} line {number}: not valid JSON ({exc.msg}, column {exc.colno})."
            ) from None
        if not isinstance(item, dict):
            raise DataError(f"{path} line {number}: expected a JSON object. Got {type(item).__name__}.")
        fields.update(item)
        rows.add(
            _text_value(item, text_column, path, number, fields), item.get(label_column), name, label_column
        )
    if not rows.texts and not rows.quarantined:
        raise DataError(f"{path} holds no JSON lines; expected one object per line with {text_column!r}.")
    return rows


def _text_value(item: dict[str, Any], column: str, path: Path, number: int, fields: Counter[str]) -> str:
    if column not in item:
        raise DataError(
            f"{path} line {number}: no field {column!r} (the text field; set it with --text-column). "
            f"Fields: {', '.join(map(repr, item))}.{suggest(column, fields)}"
        )
    value = item[column]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{path} line {number}: field {column!r} must be a string. Got {type(value).__name__}."
        )
    return value


@SOURCES.register("jsonl")
def jsonl(
    location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
) -> Intake:
    """JSON lines: one object per line with a text field and a label field."""
    assert location is not None
    return to_intake(_json_rows(location, text_column, label_column), classes, str(location), label_column)


@SOURCES.register("parquet")
def parquet(
    location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
) -> Intake:
    """A Parquet file with a string text column and a label column."""
    assert location is not None
    try:
        import pyarrow.parquet as pq

        names = pq.ParquetFile(location).schema_arrow.names
        _column(names, text_column, location, "text")
        _column(names, label_column, location, "label")
        table = pq.read_table(location, columns=[text_column, label_column]).to_pydict()
    except ImportError:
        raise DataError("Parquet sources need pyarrow: pip install pyarrow.") from None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{location} is not a readable Parquet file: {exc}.") from None
    rows = Rows()
    for number, (text, label) in enumerate(
        zip(table[text_column], table[label_column], strict=True), start=1
    ):
        name = f"{location.name}:{number}"
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                rows.quarantined.append(("undecodable", name, f"not valid UTF-8 (byte {exc.start})"))
                continue
        if text is not None and not isinstance(text, str):
            raise DataError(
                f"{location} row {number}: column {text_column!r} must hold strings. Got {type(text).__name__}."
            )
        rows.add(text or "", label, name, label_column)
    return to_intake(rows, classes, str(location), label_column)


def table_kind(path: Path) -> str | None:
    """The text source kind of a table file by its suffix, or None."""
    return TABLE_KINDS.get(path.suffix.lower())


TEXT.update({"csv", "tsv", "jsonl", "parquet"})
