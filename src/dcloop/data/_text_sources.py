"""Text sources: CSV/TSV, JSONL and Parquet tables with a text and a label column, and folders of
``<class>/<file>.txt`` (optionally under ``train/`` and ``test/``, whose split is kept).

A row or file that cannot be decoded as UTF-8, or has no label, is quarantined with its reason and
the import goes on; a table that cannot be parsed (a broken row, a missing column, a text that is no
string) stops the import with one line naming the file, the line and the field. Labels are compared
after NFKC, whitespace collapse and case folding, so "Positive" and "positive " are one class (named
by its most common spelling); the spellings merged are reported as ``label_variants``.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dcloop.data._folder import SPLIT_FOLDERS, _files, _layout, _relative
from dcloop.data._intake import SOURCES, TEXT, Intake, require_classes, select_classes
from dcloop.data._text_clean import normalize
from dcloop.errors import DataError, suggest

TEXT_SUFFIXES = {".txt", ".text"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TABLE_KINDS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


@dataclass
class Rows:
    """What a text source read: texts with their raw labels, where each came from, own-test marks."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    test: list[bool] = field(default_factory=list)
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, text: str, label: object, name: str, label_field: str, test: bool = False) -> None:
        raw = "" if label is None else str(label)
        if not raw.strip():
            self.quarantined.append(("missing_label", name, f"empty {label_field!r}"))
            return
        self.texts.append(text)
        self.labels.append(raw)
        self.names.append(name)
        self.test.append(test)


def label_key(raw: str) -> str:
    """Spellings of one label compare equal under this key: "Positive", "positive ", "POSITIVE"."""
    return normalize(raw).casefold()


def _natural(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isascii() and name.isdigit() else (1, name)


def to_intake(rows: Rows, wanted: Sequence[str] | None, origin: str, label_field: str) -> Intake:
    """Class names from the labels' canonical spellings, the wanted classes kept, relabelled 0..K-1."""
    if not rows.labels and not any(rule != "missing_label" for rule, _, _ in rows.quarantined):
        raise DataError(f"{origin}: {label_field!r} is empty in every row; each text needs a label.")
    spellings: dict[str, Counter[str]] = {}
    for raw in rows.labels:
        spellings.setdefault(label_key(raw), Counter())[raw] += 1
    canonical = {key: _most_common_spelling(seen) for key, seen in spellings.items()}
    known = sorted(canonical.values(), key=_natural)
    picked = select_classes(known, wanted, origin)
    names = [known[i] for i in picked]
    require_classes(names, f"{origin} ({label_field!r})")
    index = {label_key(name): i for i, name in enumerate(names)}
    keep = [i for i, raw in enumerate(rows.labels) if label_key(raw) in index]
    texts = np.empty(len(keep), dtype=object)
    texts[:] = [rows.texts[i] for i in keep]
    variants = {canonical[k]: sorted(seen) for k, seen in spellings.items() if len(seen) > 1}
    return Intake(
        classes=names,
        x=texts,
        y=np.array([index[label_key(rows.labels[i])] for i in keep], dtype=np.int64),
        names=[rows.names[i] for i in keep],
        test=np.array([rows.test[i] for i in keep], dtype=bool),
        quarantined=rows.quarantined,
        modality="text",
        notes={"label_variants": variants} if variants else {},
    )


def _most_common_spelling(seen: Counter[str]) -> str:
    """The normalised spelling most rows use (ties: lower case first, then sort order)."""
    tally = Counter[str]()
    for raw, n in seen.items():
        tally[normalize(raw)] += n
    return min(tally, key=lambda spelling: (-tally[spelling], spelling != spelling.lower(), spelling))


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


@SOURCES.register("text-folder")
def text_folder(
    location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
) -> Intake:
    """A folder of class sub-folders of .txt files, optionally under train/ and test/."""
    assert location is not None
    root = location.resolve()
    rows = Rows()
    layout = _layout(root, rows.quarantined)
    if not any(layout.values()):
        raise DataError(f"{location} has no class sub-folders. Expected {location}/<class>/<file>.txt.")
    for split, by_class in layout.items():
        for label, folder in by_class.items():
            for path in _files(folder, root, rows.quarantined):
                _read_text_file(path, root, label, SPLIT_FOLDERS.get(split, False), rows)
    return to_intake(rows, classes, str(location), "class folder")


def _read_text_file(path: Path, root: Path, label: str, test: bool, rows: Rows) -> None:
    name = _relative(path, root)
    if path.suffix.lower() not in TEXT_SUFFIXES:
        rows.quarantined.append(("not_text", name, f"not a {'/'.join(sorted(TEXT_SUFFIXES))} file"))
        return
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        rows.quarantined.append(("unreadable", name, f"cannot be read: {exc.strerror or exc}"))
    except UnicodeDecodeError as exc:
        rows.quarantined.append(("undecodable", name, f"not valid UTF-8 (byte {exc.start})"))
    else:
        rows.add(text, label, name, "class folder", test)


def is_text_folder(path: Path, most: int = 2000) -> bool:
    """True when the folder's files (the first ``most`` found) are more often text than images."""
    seen = Counter[str]()
    for _, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in names:
            suffix = os.path.splitext(name)[1].lower()
            seen["text" if suffix in TEXT_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else "other"] += 1
        if sum(seen.values()) >= most:
            break
    return seen["text"] > seen["image"]


def table_kind(path: Path) -> str | None:
    """The text source kind of a table file by its suffix, or None."""
    return TABLE_KINDS.get(path.suffix.lower())


TEXT.update({"csv", "tsv", "jsonl", "parquet", "text-folder"})
