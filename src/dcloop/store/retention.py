"""Bounds on the prediction log: stored inputs and prediction rows, by age and by total size.

What the loop needs stays. A row with a label is never dropped (accuracy, F1, retraining and the gate's
held-out share read those), and the size bound on inputs clears unlabelled inputs before labelled ones.
An unlabelled row that is dropped is first folded into the hourly aggregate of its model version
(``prediction_windows``: count, class mix, confidence histogram and sums, latency and intensity sums),
which ``prediction_stats`` and ``monitor`` add to the rows still kept: a figure over the window kept is
unchanged, and so are the totals of the history before it.

Rows go in batches of ``BATCH``, one short transaction each, so the server's inserts interleave with a
long pass instead of waiting behind it. SQLite reuses the pages freed by a pass for new rows, so the file
stops growing once the bound is reached; a store created with incremental auto-vacuum also gives the
free pages back to the file system when they exceed a quarter of the file (after a lowered bound or a
large ``forget``). On PostgreSQL a pass that dropped rows VACUUMs the log's tables, which makes the
deleted rows' space reusable without locking inserts out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, exists, func, select, text
from sqlalchemy.exc import OperationalError

from dcloop.store import _prediction_rows as q
from dcloop.store import _schema as s
from dcloop.store._store import Store

__all__ = [
    "BATCH",
    "HEADROOM",
    "PredictionWindow",
    "RetentionPass",
    "enforce_retention",
    "log_bytes",
    "prediction_windows",
]

BATCH = 2000  # rows per delete transaction
HEADROOM = 0.9  # a pass leaves the log at most this share of its size bound (room until the next)
CONFIDENCE_BINS = 10  # the monitor's confidence histogram: equal bins over [0, 1]
_FOLDED = ("model_version_id", "model_name", "model_version", "created_at", "confidence", "pred_label")
_SUMMED = ("latency_ms", "mean_intensity", "std_intensity")


@dataclass(frozen=True)
class PredictionWindow:
    """The dropped predictions of one model version in one hour (``start``), as aggregates."""

    model_version_id: str
    start: datetime
    model_name: str
    model_version: int
    first_at: datetime
    last_at: datetime
    predictions: int
    confidence_sum: float
    confidence_counts: list[int]
    predicted_classes: dict[str, int]
    latency_ms_sum: float
    mean_intensity_sum: float
    std_intensity_sum: float


@dataclass(frozen=True)
class RetentionPass:
    """What one pass did: inputs cleared, rows dropped (folded into windows), the log's size after it
    (when a size bound was checked) and the bytes given back to the file system."""

    inputs_cleared: int = 0
    rows_dropped: int = 0
    log_bytes: int | None = None
    freed_bytes: int = 0
    log_bytes_before: int | None = None  # the log's size when the pass began (a size bound checked)


def enforce_retention(
    store: Store,
    *,
    input_days: float | None = None,
    max_input_mb: float | None = None,
    prediction_days: float | None = None,
    max_predictions_mb: float | None = None,
    room_bytes: int = 0,
) -> RetentionPass:
    """Clear stored inputs older than ``input_days`` and the oldest beyond ``max_input_mb``; drop the
    unlabelled predictions older than ``prediction_days`` and the oldest until the log (rows, inputs,
    labels, windows and their indexes; see ``log_bytes``) is at most ``HEADROOM`` of
    ``max_predictions_mb``, and leaves at least ``room_bytes`` below it (what a caller expects to arrive
    before its next pass; never more than half the bound)."""
    now = datetime.now(UTC)
    cleared = dropped = 0
    if input_days is not None:
        cleared += q.clear_inputs(store, before=now - timedelta(days=input_days))
    if max_input_mb is not None:
        cleared += q.clear_oldest_inputs(store, int(max_input_mb * 2**20))
    if prediction_days is not None:
        dropped += _drop(store, before=now - timedelta(days=prediction_days))
    size = before = bound = None
    if max_predictions_mb is not None:
        bound = int(max_predictions_mb * 2**20)
        target = max(min(int(bound * HEADROOM), bound - room_bytes), bound // 2)
        more, before, size = _drop_beyond(store, target)
        dropped += more
    freed = _give_back(store, bound) if cleared or dropped else 0
    return RetentionPass(cleared, dropped, size, freed, before)


def _drop(store: Store, *, before: datetime | None = None, limit: int | None = None) -> int:
    """Fold and delete the oldest unlabelled rows (those before ``before``, at most ``limit``)."""
    dropped = 0
    while limit is None or dropped < limit:
        size = BATCH if limit is None else min(BATCH, limit - dropped)
        with store.transaction() as conn:
            rows = _delete_batch(conn, before, size)
            _fold(conn, rows)
        dropped += len(rows)
        if len(rows) < size:
            break
    return dropped


def _delete_batch(conn: Connection, before: datetime | None, size: int) -> Sequence[Any]:
    p, f = s.predictions, s.feedback
    if conn.dialect.name == "postgresql":
        # A label committed while this runs must not be cascaded away with its row: hold label inserts
        # back for this short transaction (prediction inserts go on).
        conn.execute(text("LOCK TABLE feedback IN SHARE MODE"))
    unlabelled = ~exists().where(f.c.prediction_id == p.c.id)
    oldest = select(p.c.id).where(unlabelled).order_by(p.c.created_at).limit(size)
    if before is not None:
        oldest = oldest.where(p.c.created_at < before)
    query = delete(p).where(p.c.id.in_(oldest.scalar_subquery()), unlabelled)
    return conn.execute(query.returning(*(p.c[n] for n in _FOLDED + _SUMMED))).all()


def _fold(conn: Connection, rows: Sequence[Any]) -> None:
    """Add ``rows`` to the hourly windows of their model versions (inserting the missing ones)."""
    w = s.prediction_windows
    groups: dict[tuple[str, datetime], list[Any]] = {}
    for row in rows:
        at = row.created_at
        groups.setdefault((row.model_version_id, at.replace(minute=0, second=0, microsecond=0)), []).append(
            row
        )
    for (version_id, start), members in groups.items():
        key = (w.c.model_version_id == version_id) & (w.c.start == start)
        old = conn.execute(select(w).where(key)).mappings().first()
        new = _window(members, version_id, start)
        if old is None:
            conn.execute(w.insert().values(**new))
        else:
            conn.execute(w.update().where(key).values(**_merge(dict(old), new)))


def _window(rows: list[Any], version_id: str, start: datetime) -> dict[str, Any]:
    confidence = np.array([r.confidence for r in rows], dtype=np.float64)
    counts, _ = np.histogram(confidence, bins=CONFIDENCE_BINS, range=(0.0, 1.0))
    classes: dict[str, int] = {}
    for r in rows:
        classes[r.pred_label] = classes.get(r.pred_label, 0) + 1
    times = [r.created_at for r in rows]
    return {
        "model_version_id": version_id,
        "start": start,
        "model_name": rows[0].model_name,
        "model_version": rows[0].model_version,
        "first_at": min(times),
        "last_at": max(times),
        "predictions": len(rows),
        "confidence_sum": float(confidence.sum()),
        "confidence_counts": [int(c) for c in counts],
        "predicted_classes": classes,
        **{f"{name}_sum": float(sum(getattr(r, name) for r in rows)) for name in _SUMMED},
    }


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(new)
    merged["first_at"] = min(old["first_at"], new["first_at"])
    merged["last_at"] = max(old["last_at"], new["last_at"])
    for name in (
        "predictions",
        "confidence_sum",
        "latency_ms_sum",
        "mean_intensity_sum",
        "std_intensity_sum",
    ):
        merged[name] = old[name] + new[name]
    merged["confidence_counts"] = [
        a + b for a, b in zip(old["confidence_counts"], new["confidence_counts"], strict=True)
    ]
    classes = dict(old["predicted_classes"])
    for label, n in new["predicted_classes"].items():
        classes[label] = classes.get(label, 0) + n
    merged["predicted_classes"] = classes
    return merged


def _drop_beyond(store: Store, target: int) -> tuple[int, int, int]:
    """Drop the oldest unlabelled rows until the log is at most ``target`` bytes, so the rows that
    arrive before the next pass (up to the rest of the bound) keep it under the bound.
    Returns the rows dropped and the size before and after."""
    dropped, size = 0, log_bytes(store)
    before = size
    if size <= target:
        return 0, before, size
    # Each round estimates the rows to drop from the mean row size. Rows answered together free whole
    # pages, so one or two rounds do; rows whose ids and times disagree leave pages part-full, so a
    # round drops at least 1% more.
    for _ in range(8):
        with store.connect() as conn:
            rows = int(conn.execute(select(func.count()).select_from(s.predictions)).scalar() or 0)
        if rows == 0:
            break
        excess = math.ceil((size - target) / (size / rows))
        done = _drop(store, limit=max(excess, math.ceil(rows / 100)))
        dropped += done
        size = log_bytes(store)
        if done == 0 or size <= target:  # done == 0: only labelled rows are left
            break
    return dropped, before, size


_LOG_TABLES = ("predictions", "feedback", "prediction_windows")


def log_bytes(store: Store) -> int:
    """Bytes the prediction log occupies. SQLite: the pages of its tables and indexes (or, without the
    dbstat table, all pages in use); PostgreSQL: its live rows plus its indexes."""
    with store.connect() as conn:
        if conn.dialect.name == "sqlite":
            return _sqlite_log_bytes(conn)
        if conn.dialect.name == "postgresql":
            rows = " + ".join(
                f"(SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {n} t)" for n in _LOG_TABLES
            )
            indexes = " + ".join(f"pg_indexes_size('{n}')" for n in _LOG_TABLES)
            return int(conn.execute(text(f"SELECT {rows} + {indexes}")).scalar() or 0)
        return 0


def _sqlite_log_bytes(conn: Connection) -> int:
    names = ",".join(f"'{n}'" for n in _LOG_TABLES)
    try:
        return int(
            conn.exec_driver_sql(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat "
                f"WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name IN ({names}))"
            ).scalar()
            or 0
        )
    except OperationalError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB: every page in use
        pages, free, size = (_pragma(conn, p) for p in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size


def _give_back(store: Store, bound: int | None = None) -> int:
    """SQLite with incremental auto-vacuum: truncate the free pages once they are over a quarter of the
    file, or the file is over the log's size ``bound`` (below that, new rows reuse them), so the file on
    disk keeps to the bound too. Returns the bytes given back.

    PostgreSQL: a plain VACUUM of the log's tables, so new rows reuse the space of those just deleted
    instead of extending the files until autovacuum comes round (it takes no lock inserts wait for).
    """
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM " + ", ".join(_LOG_TABLES)
            )
        return 0
    if store.engine.dialect.name != "sqlite":
        return 0
    with store.connect() as conn:
        mode, pages, free, size = (
            _pragma(conn, p) for p in ("auto_vacuum", "page_count", "freelist_count", "page_size")
        )
        over = bound is not None and pages * size > bound
        if mode != 2 or free == 0 or (free * 4 <= pages and not over):
            return 0
    raw = store.engine.raw_connection()
    try:  # executescript steps the pragma to the end; one execute() frees a single page
        raw.driver_connection.executescript("PRAGMA incremental_vacuum;")  # type: ignore[union-attr]
    finally:
        raw.close()
    return free * size


def _pragma(conn: Connection, name: str) -> int:
    return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar() or 0)


def prediction_windows(
    store: Store,
    *,
    model_version_id: str | None = None,
    model_name: str | None = None,
    since: datetime | None = None,
) -> list[PredictionWindow]:
    """The folded windows (oldest first) whose first prediction is at or after ``since``."""
    w = s.prediction_windows
    query = select(w).order_by(w.c.start)
    if model_version_id is not None:
        query = query.where(w.c.model_version_id == model_version_id)
    if model_name is not None:
        query = query.where(w.c.model_name == model_name)
    if since is not None:
        query = query.where(w.c.first_at >= since)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [PredictionWindow(**r) for r in rows]
