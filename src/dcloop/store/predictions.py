"""Predictions and labels: every answer the server gives, and the true labels posted for them.

The public query module of the prediction log (the server, the gate, monitoring and retraining use it;
``dcloop.feedback`` re-exports it). Every function takes the Store and commits at most one transaction
of its own; records are frozen. Stored inputs (uint8 pixels, for retraining) follow a retention setting;
``forget`` deletes them on request while keeping the non-identifying aggregates (predicted class,
confidence, label, mean/std intensity, model version). Rows themselves are bounded by age and size in
``dcloop.store.retention``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np

from dcloop.errors import DataError, PredictionNotFoundError
from dcloop.store import _prediction_rows as q
from dcloop.store._prediction_aggregates import (
    confidence_histogram,
    feedback_counts,
    labelled_confusion_by_bucket,
    prediction_counts_by_bucket,
    prediction_span,
)
from dcloop.store._prediction_rows import Prediction, PredictionRows
from dcloop.store._store import Store
from dcloop.store.retention import prediction_windows

__all__ = [
    "Prediction",
    "PredictionRows",
    "add_labels",
    "confidence_histogram",
    "feedback_counts",
    "forget",
    "get_predictions",
    "in_holdout",
    "labelled_confusion_by_bucket",
    "labelled_examples",
    "labelled_predictions",
    "list_predictions",
    "log_predictions",
    "new_prediction",
    "new_prediction_rows",
    "new_predictions",
    "new_text_prediction_rows",
    "new_text_predictions",
    "prediction_counts_by_bucket",
    "prediction_pixels",
    "prediction_span",
    "prediction_stats",
    "time_ordered_ids",
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
    return new_prediction_rows(
        pixels,
        probabilities,
        classes,
        model,
        latency_ms=latency_ms,
        endpoint=endpoint,
        store_input=store_input,
    ).records()


def new_prediction_rows(
    pixels: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    model: AnsweringModel,
    *,
    latency_ms: Sequence[float],
    endpoint: str = "predict",
    store_input: bool = True,
) -> PredictionRows:
    """``new_predictions`` column by column, for ``log_predictions`` (the server's hot path)."""
    raw = np.ascontiguousarray(pixels, dtype=np.uint8)
    flat = raw.reshape(len(raw), -1)
    data = [row.tobytes() for row in flat]
    return _rows(
        data,
        [hashlib.sha256(d).hexdigest() for d in data],
        [int(d) for d in raw.shape[1:]],
        _intensity(flat),
        probabilities,
        classes,
        model,
        latency_ms,
        endpoint,
        store_input,
    )


def _intensity(flat: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each row of uint8 pixels, from exact integer sums."""
    if not flat.size:
        return [0.0] * len(flat), [0.0] * len(flat)
    wide = flat.astype(np.int64)
    mean = wide.sum(axis=1) / flat.shape[1]
    var = np.einsum("ij,ij->i", wide, wide) / flat.shape[1] - mean * mean
    return mean.tolist(), np.sqrt(np.maximum(var, 0.0)).tolist()


def _rows(
    data: Sequence[bytes],
    digests: Sequence[str],
    shape: list[int],
    summaries: tuple[Sequence[float], Sequence[float]],
    probabilities: np.ndarray,
    classes: Sequence[str],
    model: AnsweringModel,
    latency_ms: Sequence[float],
    endpoint: str,
    store_input: bool,
) -> PredictionRows:
    """One row per input: ``data`` the stored form, ``digests`` the hash of the whole input, and the
    two summaries kept after ``forget`` (mean_intensity, std_intensity)."""
    indices = probabilities.argmax(axis=1).tolist()
    rounded = np.round(probabilities.astype(np.float64), 6).tolist()
    n = len(data)
    first, second = summaries
    return PredictionRows(
        {
            "id": time_ordered_ids(n),
            "created_at": [datetime.now(UTC)] * n,
            "model_name": [model.name] * n,
            "model_version": [model.version] * n,
            "model_version_id": [model.id] * n,
            "input_sha256": list(digests),
            "input_shape": [shape] * n,
            "input": list(data) if store_input else [None] * n,
            "input_bytes": [len(d) for d in data] if store_input else [0] * n,
            "pred_index": indices,
            "pred_label": [classes[i] for i in indices],
            "confidence": [row[i] for row, i in zip(rounded, indices, strict=True)],
            "probabilities": [dict(zip(classes, row, strict=True)) for row in rounded],
            "latency_ms": [float(v) for v in latency_ms],
            "mean_intensity": [float(v) for v in first],
            "std_intensity": [float(v) for v in second],
            "endpoint": [endpoint] * n,
        }
    )


MAX_STORED_TEXT_BYTES = 16 * 1024  # a stored text keeps its first 16 KiB of UTF-8 (its hash covers all of it)


def new_text_predictions(
    texts: Sequence[str],
    tokens: Sequence[int],
    unknown_share: Sequence[float],
    probabilities: np.ndarray,
    classes: Sequence[str],
    model: AnsweringModel,
    *,
    latency_ms: Sequence[float],
    endpoint: str = "predict",
    store_input: bool = True,
) -> list[Prediction]:
    """Records of a batch of texts: the text itself is the stored input (UTF-8, at most
    ``MAX_STORED_TEXT_BYTES``, ``input_shape`` ``[]``). The summaries kept after ``forget`` are the
    text's token count (in ``mean_intensity``) and its share of unknown tokens (in ``std_intensity``)."""
    return new_text_prediction_rows(
        texts,
        tokens,
        unknown_share,
        probabilities,
        classes,
        model,
        latency_ms=latency_ms,
        endpoint=endpoint,
        store_input=store_input,
    ).records()


def new_text_prediction_rows(
    texts: Sequence[str],
    tokens: Sequence[int],
    unknown_share: Sequence[float],
    probabilities: np.ndarray,
    classes: Sequence[str],
    model: AnsweringModel,
    *,
    latency_ms: Sequence[float],
    endpoint: str = "predict",
    store_input: bool = True,
) -> PredictionRows:
    """``new_text_predictions`` column by column, for ``log_predictions``."""
    full = [text.encode("utf-8", "replace") for text in texts]
    return _rows(
        [d if len(d) <= MAX_STORED_TEXT_BYTES else _cut_utf8(d, MAX_STORED_TEXT_BYTES) for d in full],
        [hashlib.sha256(d).hexdigest() for d in full],
        [],
        (tokens, unknown_share),
        probabilities,
        classes,
        model,
        latency_ms,
        endpoint,
        store_input,
    )


def _cut_utf8(data: bytes, limit: int) -> bytes:
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


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


def log_predictions(store: Store, rows: Sequence[Prediction] | PredictionRows) -> None:
    """Store ``rows`` (records, or a batch built by ``new_prediction_rows``) in one transaction; they
    are durable when this returns."""
    q.insert_predictions(store, rows)


def add_labels(store: Store, labels: Iterable[tuple[str, str | int]], source: str = "api") -> int:
    """Attach true labels (class name or index) to predictions; all or nothing, every problem reported.

    A later label for the same prediction supersedes the earlier one (both are kept).
    """
    pairs = [(str(pid), label) for pid, label in labels]
    found = q.get_predictions(store, [pid for pid, _ in pairs])
    now, rows, problems, missing = datetime.now(UTC), [], [], False
    for pid, label in pairs:
        prediction = found.get(pid)
        if prediction is None:
            problems.append(f"no prediction {pid!r}")
            missing = True
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
        refused = PredictionNotFoundError if missing else DataError  # a server answers 404 or 422
        raise refused(f"Labels refused, nothing stored: {'; '.join(problems[:5])}{more}.")
    q.insert_labels(store, rows)
    return len(rows)


def _label_index(label: str | int, classes: list[str]) -> int | None:
    if isinstance(label, str) and label in classes:
        return classes.index(label)
    text = str(label).strip()
    digits = text.removeprefix("-")
    if isinstance(label, bool) or not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
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
    """The stored input as uint8 (C, H, W), or None once forgotten or expired (or for a text)."""
    if prediction.input is None or not prediction.input_shape:
        return None
    return np.frombuffer(prediction.input, dtype=np.uint8).reshape(prediction.input_shape)


def prediction_text(prediction: Prediction) -> str | None:
    """The stored text of a text prediction, or None once forgotten or expired (or for an image)."""
    if prediction.input is None or prediction.input_shape:
        return None
    return prediction.input.decode("utf-8", "replace")


def prediction_input(prediction: Prediction) -> np.ndarray | str | None:
    """The stored input: uint8 pixels (C, H, W) of an image, the text of a text; None once gone."""
    return prediction_pixels(prediction) if prediction.input_shape else prediction_text(prediction)


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
    inputs are still stored and shaped like ``shape`` (C, H, W). A text model's ``shape`` is ``()``:
    its examples are texts, a 1-D object array of str.

    ``part`` "train" or "holdout" keeps one side of a split that puts a ``holdout`` share of the
    examples aside, by a hash of their pixels: an image stays on its side as more feedback arrives and
    repeats of it land on the same side, so a challenger trained on one side is judged on unseen ones.
    """
    xs: list[Any] = []
    ys = []
    for row in labelled_predictions(store, since=since, model_name=model_name):
        value = prediction_input(row)
        if value is None or row.label_index is None or np.shape(value) != shape:
            continue
        if part == "all" or in_holdout(value, holdout) == (part == "holdout"):
            xs.append(value)
            ys.append(row.label_index)
    labels = np.asarray(ys, dtype=np.int64)
    if shape == ():
        texts = np.empty(len(xs), dtype=object)
        texts[:] = xs
        return texts, labels
    if not xs:
        return np.zeros((0, *shape), dtype=np.uint8), labels
    return np.stack(xs), labels


def in_holdout(value: np.ndarray | str, share: float) -> bool:
    """Whether an input (pixels, or a text) falls in the held-out ``share`` of feedback (deterministic,
    by its content)."""
    data = (
        value.encode("utf-8", "replace") if isinstance(value, str) else np.ascontiguousarray(value).tobytes()
    )
    digest = hashlib.sha256(data).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def forget(store: Store, ids: Sequence[str] | None = None, before: datetime | None = None) -> int:
    """Delete the stored inputs of the given predictions and/or of all before a time; keep aggregates.

    Returns how many inputs were deleted. With neither argument nothing is deleted.
    """
    if ids is None and before is None:
        raise DataError("forget needs prediction ids or a --before date; refusing to forget everything.")
    return q.clear_inputs(store, ids=ids, before=before)


def prediction_stats(
    store: Store,
    model_version: str | None = None,
    since: datetime | None = None,
    *,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Counts, labelled accuracy, class mix and confidence of the predictions in a window.

    Rows that retention folded into hourly windows count too (their inputs are gone).
    """
    rows = q.select_predictions(
        store, model_version_id=model_version, model_name=model_name, since=since, with_inputs=False
    )
    windows = prediction_windows(store, model_version_id=model_version, model_name=model_name, since=since)
    labelled = [r for r in rows if r.label is not None]
    predicted: dict[str, int] = {}
    for r in rows:
        predicted[r.pred_label] = predicted.get(r.pred_label, 0) + 1
    for w in windows:
        for label, n in w.predicted_classes.items():
            predicted[label] = predicted.get(label, 0) + n
    total = len(rows) + sum(w.predictions for w in windows)
    confidence = sum(r.confidence for r in rows) + sum(w.confidence_sum for w in windows)
    latency = sum(r.latency_ms for r in rows) + sum(w.latency_ms_sum for w in windows)
    return {
        "predictions": total,
        "labelled": len(labelled),
        "accuracy": sum(r.label_index == r.pred_index for r in labelled) / len(labelled)
        if labelled
        else None,
        "predicted_classes": predicted,
        "mean_confidence": confidence / total if total else None,
        "mean_latency_ms": latency / total if total else None,
        "stored_inputs": sum(r.input_bytes > 0 for r in rows),
        "stored_input_bytes": sum(r.input_bytes for r in rows),
    }


def list_predictions(
    store: Store,
    *,
    model_version_id: str | None = None,
    model_name: str | None = None,
    since: datetime | None = None,
    labelled: bool | None = None,
    with_inputs: bool = True,
    limit: int | None = None,
) -> list[Prediction]:
    """Predictions still kept as rows (oldest first) with their latest label, filtered."""
    return q.select_predictions(
        store,
        model_version_id=model_version_id,
        model_name=model_name,
        since=since,
        labelled=labelled,
        with_inputs=with_inputs,
        limit=limit,
    )


def get_predictions(store: Store, ids: Sequence[str]) -> dict[str, Prediction]:
    """The kept predictions among ``ids``, by id."""
    return q.get_predictions(store, ids)
