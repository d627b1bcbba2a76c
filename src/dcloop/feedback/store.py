"""The feedback store: every prediction the server answers, and the true labels posted for them.

It lives in the workspace store (SQLite in WAL mode, or PostgreSQL by URL). Stored inputs (uint8
pixels, for retraining) follow a retention setting; ``forget`` deletes them on request while keeping
the non-identifying aggregates (predicted class, confidence, label, mean/std intensity, model version).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from dcloop.errors import DataError
from dcloop.store import _feedback as q
from dcloop.store._feedback import Prediction
from dcloop.store._store import Store

__all__ = [
    "Prediction",
    "add_labels",
    "enforce_retention",
    "forget",
    "import_labels",
    "in_holdout",
    "labelled_examples",
    "labelled_predictions",
    "log_predictions",
    "new_prediction",
    "new_predictions",
    "prediction_pixels",
    "prediction_stats",
]


class AnsweringModel(Protocol):
    """What a prediction records about the model that answered it (a registry ModelVersion fits)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...


def new_prediction(
    pixels: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    model: AnsweringModel,
    *,
    latency_ms: float,
    endpoint: str = "predict",
    store_input: bool = True,
) -> Prediction:
    """Build the record of one answer to ``pixels`` (uint8, (C, H, W)); ``probabilities`` is (K,)."""
    return new_predictions(
        np.asarray(pixels)[None],
        np.asarray(probabilities)[None],
        classes,
        model,
        latency_ms=[latency_ms],
        endpoint=endpoint,
        store_input=store_input,
    )[0]


def new_predictions(
    pixels: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    model: AnsweringModel,
    *,
    latency_ms: Sequence[float],
    endpoint: str = "predict",
    store_input: bool = True,
) -> list[Prediction]:
    """Records of a batch: ``pixels`` uint8 (N, C, H, W), ``probabilities`` (N, K), one latency each."""
    raw = np.ascontiguousarray(pixels, dtype=np.uint8)
    flat = raw.reshape(len(raw), -1).astype(np.float32)
    means, stds = flat.mean(axis=1).tolist(), flat.std(axis=1).tolist()
    indices = probabilities.argmax(axis=1).tolist()
    rounded = np.round(probabilities.astype(np.float64), 6).tolist()
    now, shape = datetime.now(UTC), [int(d) for d in raw.shape[1:]]
    ids = time_ordered_ids(len(raw))
    rows = []
    for i, index in enumerate(indices):
        data = raw[i].tobytes()
        rows.append(
            Prediction(
                id=ids[i],
                created_at=now,
                model_name=model.name,
                model_version=model.version,
                model_version_id=model.id,
                input_sha256=hashlib.sha256(data).hexdigest(),
                input_shape=shape,
                input=data if store_input else None,
                input_bytes=len(data) if store_input else 0,
                pred_index=index,
                pred_label=classes[index],
                confidence=rounded[i][index],
                probabilities=dict(zip(classes, rounded[i], strict=True)),
                latency_ms=float(latency_ms[i]),
                mean_intensity=means[i],
                std_intensity=stds[i],
                endpoint=endpoint,
            )
        )
    return rows


def time_ordered_ids(n: int) -> list[str]:
    """``n`` new UUIDv7 ids as 32 hex digits (RFC 9562: a millisecond timestamp, then random bits).

    They grow with time, so a new prediction lands at the end of the id index instead of on a random
    page of it: a commit rewrites a few index pages, not one per row.
    """
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, :6] = np.frombuffer((time.time_ns() // 1_000_000).to_bytes(6, "big"), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70  # version 7
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 9562 variant
    text = raw.tobytes().hex()
    return [text[start : start + 32] for start in range(0, 32 * n, 32)]


def log_predictions(store: Store, rows: Sequence[Prediction]) -> None:
    """Store ``rows`` in one transaction; they are durable when this returns."""
    q.insert_predictions(store, rows)


def add_labels(store: Store, labels: Iterable[tuple[str, str | int]], source: str = "api") -> int:
    """Attach true labels (class name or index) to predictions; all or nothing, every problem reported.

    A later label for the same prediction supersedes the earlier one (both are kept).
    """
    pairs = [(str(pid), label) for pid, label in labels]
    found = q.get_predictions(store, [pid for pid, _ in pairs])
    now, rows, problems = datetime.now(UTC), [], []
    for pid, label in pairs:
        prediction = found.get(pid)
        if prediction is None:
            problems.append(f"no prediction {pid!r}")
            continue
        index = _label_index(label, prediction.classes)
        if index is None:
            problems.append(
                f"label {label!r} of prediction {pid} is not one of {', '.join(prediction.classes)}"
            )
            continue
        rows.append(
            dict(
                prediction_id=pid,
                label=prediction.classes[index],
                label_index=index,
                created_at=now,
                source=source,
            )
        )
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataError(f"Labels refused, nothing stored: {'; '.join(problems[:5])}{more}.")
    q.insert_labels(store, rows)
    return len(rows)


def _label_index(label: str | int, classes: list[str]) -> int | None:
    if isinstance(label, str) and label in classes:
        return classes.index(label)
    text = str(label).strip()
    if isinstance(label, bool) or not text.lstrip("-").isdigit():
        return None
    index = int(text)
    return index if 0 <= index < len(classes) else None


def labelled_predictions(
    store: Store,
    model_version: str | None = None,
    since: datetime | None = None,
    *,
    model_name: str | None = None,
    with_inputs: bool = True,
) -> list[Prediction]:
    """Predictions that have a label (the latest one wins), oldest first, with stored inputs if any.

    ``model_version`` is a registry version id (``ModelVersion.id``); ``model_name`` all its versions.
    """
    return q.select_predictions(
        store,
        model_version_id=model_version,
        model_name=model_name,
        since=since,
        labelled=True,
        with_inputs=with_inputs,
    )


def prediction_pixels(prediction: Prediction) -> np.ndarray | None:
    """The stored input as uint8 (C, H, W), or None once forgotten or expired."""
    if prediction.input is None:
        return None
    return np.frombuffer(prediction.input, dtype=np.uint8).reshape(prediction.input_shape)


def labelled_examples(
    store: Store,
    model_name: str,
    shape: tuple[int, ...],
    since: datetime | None = None,
    *,
    holdout: float = 0.0,
    part: Literal["all", "train", "holdout"] = "all",
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) and class indices of the labelled predictions of ``model_name`` whose
    inputs are still stored and shaped like ``shape`` (C, H, W).

    ``part`` "train" or "holdout" keeps one side of a split that puts a ``holdout`` share of the
    examples aside, by a hash of their pixels: an image stays on its side as more feedback arrives and
    repeats of it land on the same side, so a challenger trained on one side is judged on unseen ones.
    """
    xs, ys = [], []
    for row in labelled_predictions(store, since=since, model_name=model_name):
        pixels = prediction_pixels(row)
        if pixels is None or pixels.shape != shape or row.label_index is None:
            continue
        if part == "all" or in_holdout(pixels, holdout) == (part == "holdout"):
            xs.append(pixels)
            ys.append(row.label_index)
    if not xs:
        return np.zeros((0, *shape), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def in_holdout(pixels: np.ndarray, share: float) -> bool:
    """Whether an input falls in the held-out ``share`` of feedback (deterministic, by its pixels)."""
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def forget(store: Store, ids: Sequence[str] | None = None, before: datetime | None = None) -> int:
    """Delete the stored inputs of the given predictions and/or of all before a time; keep aggregates.

    Returns how many inputs were deleted. With neither argument nothing is deleted.
    """
    if ids is None and before is None:
        raise DataError("forget needs prediction ids or a --before date; refusing to forget everything.")
    return q.clear_inputs(store, ids=ids, before=before)


def enforce_retention(store: Store, max_age_days: float | None, max_total_mb: float | None) -> int:
    """Delete stored inputs older than ``max_age_days`` and the oldest beyond ``max_total_mb``."""
    cleared = 0
    if max_age_days is not None:
        cleared += q.clear_inputs(store, before=datetime.now(UTC) - timedelta(days=max_age_days))
    if max_total_mb is not None:
        cleared += q.clear_oldest_inputs(store, int(max_total_mb * 1024 * 1024))
    return cleared


def prediction_stats(
    store: Store,
    model_version: str | None = None,
    since: datetime | None = None,
    *,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Counts, labelled accuracy, class mix and confidence of the predictions in a window."""
    rows = q.select_predictions(
        store, model_version_id=model_version, model_name=model_name, since=since, with_inputs=False
    )
    labelled = [r for r in rows if r.label is not None]
    predicted: dict[str, int] = {}
    for r in rows:
        predicted[r.pred_label] = predicted.get(r.pred_label, 0) + 1
    return {
        "predictions": len(rows),
        "labelled": len(labelled),
        "accuracy": sum(r.label_index == r.pred_index for r in labelled) / len(labelled)
        if labelled
        else None,
        "predicted_classes": predicted,
        "mean_confidence": float(np.mean([r.confidence for r in rows])) if rows else None,
        "mean_latency_ms": float(np.mean([r.latency_ms for r in rows])) if rows else None,
        "stored_inputs": sum(r.input_bytes > 0 for r in rows),
        "stored_input_bytes": sum(r.input_bytes for r in rows),
    }


def import_labels(store: Store, path: Path) -> int:
    """Read ``prediction_id,label`` rows from a CSV (with header) or JSONL file and add them at once."""
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
        return [_jsonl_pair(path, n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"prediction_id", "label"} <= set(reader.fieldnames):
        raise DataError(f"{path} must be a CSV with columns prediction_id,label. Got {reader.fieldnames}.")
    return [(row["prediction_id"], row["label"]) for row in reader]


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
