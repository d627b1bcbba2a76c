"""Labels from a file: ``dcloop feedback import`` reads ``prediction_id,label`` rows and adds them at once."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dcloop.errors import DataError
from dcloop.store import Store
from dcloop.store.predictions import add_labels

__all__ = ["import_labels"]


def import_labels(store: Store, path: Path) -> int:
    """Read ``prediction_id,label`` rows from a CSV (with header) or JSONL file and add them at once;
    other columns are ignored, and so are rows whose label is empty (or null)."""
    pairs = _read_label_file(path)
    if not pairs:
        raise DataError(f"{path} holds no labels (expected prediction_id,label rows).")
    return add_labels(store, pairs, source=f"import:{path.name}")


def _read_label_file(path: Path) -> list[tuple[str, str | int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read labels file {path}: {exc}.") from None
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        pairs = [_jsonl_pair(path, n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or not {"prediction_id", "label"} <= set(reader.fieldnames):
            raise DataError(
                f"{path} must be a CSV with columns prediction_id,label. Got {reader.fieldnames}."
            )
        pairs = [(row["prediction_id"], row["label"]) for row in reader]
    # a row left without a label (an exported file a labeller filled in part) is not a label
    return [(pid, label) for pid, label in pairs if label is not None and str(label).strip()]


def _jsonl_pair(path: Path, line_no: int, line: str) -> tuple[str, str | int]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {line_no} is not JSON: {exc.msg}.") from None
    if not isinstance(item, dict) or "prediction_id" not in item or "label" not in item:
        raise DataError(
            f"{path} line {line_no} must be an object with prediction_id and label. Got {line[:80]!r}."
        )
    return str(item["prediction_id"]), item["label"]
