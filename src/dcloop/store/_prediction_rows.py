"""SQL of prediction rows and their labels, behind ``dcloop.store.predictions`` and ``retention``.

Every function takes a Store and commits at most one transaction; returned records are frozen.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Select, exists, func, select, update

from dcloop.store import _schema as s
from dcloop.store._store import Store

CLEAR_BATCH = 2000  # inputs cleared per transaction
INSERT_CHUNK = 50  # rows per statement: 17 columns x 50 stays under SQLite's oldest 999-parameter cap


@dataclass(frozen=True)
class Prediction:
    """One answered input. ``input`` holds the uint8 pixels (C, H, W) until forgotten or expired."""

    id: str
    created_at: datetime
    model_name: str
    model_version: int
    model_version_id: str
    input_sha256: str
    input_shape: list[int]
    input: bytes | None
    input_bytes: int
    pred_index: int
    pred_label: str
    confidence: float
    probabilities: dict[str, float]  # class -> probability, in the model's class order
    latency_ms: float
    mean_intensity: float
    std_intensity: float
    endpoint: str
    label: str | None = None  # the latest label posted for it, if any
    label_index: int | None = None
    labelled_at: datetime | None = None
    label_source: str | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.probabilities)


@dataclass(frozen=True)
class PredictionRows:
    """Predictions column by column (table column name -> one value per row): what the server logs.

    A batch is built and stored without a record object per row, which costs several times the
    insert itself under a busy server's GIL; ``records`` gives the frozen records when a caller
    needs them.
    """

    columns: dict[str, list[Any]]

    @property
    def ids(self) -> list[str]:
        return self.columns["id"]

    def __len__(self) -> int:
        return len(self.columns["id"])

    def records(self) -> list[Prediction]:
        names, values = list(self.columns), self.columns.values()
        return [Prediction(**dict(zip(names, row, strict=True))) for row in zip(*values, strict=True)]

    @classmethod
    def of(cls, rows: Sequence[Prediction] | PredictionRows) -> PredictionRows:
        if isinstance(rows, PredictionRows):
            return rows
        return cls({c.name: [getattr(r, c.name) for r in rows] for c in s.predictions.c})

    @classmethod
    def join(cls, parts: Sequence[PredictionRows]) -> PredictionRows:
        """The rows of ``parts`` one after another (a group commit's batches)."""
        if len(parts) == 1:
            return parts[0]
        return cls({name: [v for part in parts for v in part.columns[name]] for name in parts[0].columns})


def insert_predictions(store: Store, rows: Sequence[Prediction] | PredictionRows) -> None:
    """All rows in one transaction: they are durable when this returns."""
    table = PredictionRows.of(rows)
    if not len(table):
        return
    with store.transaction() as conn:
        if conn.dialect.name != "sqlite":
            names = [c.name for c in s.predictions.c]
            values = zip(*(table.columns[n] for n in names), strict=True)
            conn.execute(s.predictions.insert(), [dict(zip(names, row, strict=True)) for row in values])
            return
        # SQLite: multi-row VALUES statements, one driver call per chunk instead of one per row (each
        # row step releases and retakes the GIL, slow while a server is busy).
        flat = _sqlite_values(conn.dialect, table)
        width = len(s.predictions.c)
        for start in range(0, len(table), INSERT_CHUNK):
            n = min(INSERT_CHUNK, len(table) - start)
            conn.exec_driver_sql(_insert_sql(n), tuple(flat[start * width : (start + n) * width]))


def _sqlite_values(dialect: Any, table: PredictionRows) -> list[Any]:
    """Bound values of ``table``, row-major, as SQLAlchemy's own bind processors would give them.

    Column by column; JSON through orjson, which writes what the stdlib would for the finite numbers
    and strings a prediction holds, several times faster.
    """
    import orjson

    columns = []
    for column in s.predictions.c:
        values = table.columns[column.name]
        if isinstance(column.type, JSON):
            convert: Any = lambda v: orjson.dumps(v).decode()  # noqa: E731
        elif (convert := column.type.bind_processor(dialect)) is None:
            columns.append(values)
            continue
        first = values[0]
        if all(v is first for v in values):  # one value for the whole batch (its time, model, shape)
            columns.append([convert(first)] * len(values))
        else:
            columns.append([convert(v) for v in values])
    return [value for row in zip(*columns, strict=True) for value in row]


@functools.cache
def _insert_sql(rows: int) -> str:
    marks = "(" + ",".join("?" * len(s.predictions.c)) + ")"
    names = ",".join(f'"{c.name}"' for c in s.predictions.c)
    return f"INSERT INTO predictions ({names}) VALUES {','.join([marks] * rows)}"


def get_predictions(store: Store, ids: Sequence[str]) -> dict[str, Prediction]:
    found: dict[str, Prediction] = {}
    with store.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = conn.execute(_joined().where(s.predictions.c.id.in_(chunk))).mappings().all()
            found.update({r["id"]: _record(r) for r in rows})
    return found


def insert_labels(store: Store, labels: Sequence[dict[str, Any]]) -> None:
    """Rows of prediction_id, label, label_index, created_at, source; one transaction."""
    if labels:
        with store.transaction() as conn:
            conn.execute(s.feedback.insert(), list(labels))


def select_predictions(
    store: Store,
    *,
    model_version_id: str | None = None,
    model_name: str | None = None,
    since: datetime | None = None,
    labelled: bool | None = None,
    with_inputs: bool = True,
    limit: int | None = None,
) -> list[Prediction]:
    query = _joined(with_inputs).order_by(s.predictions.c.created_at)
    if model_version_id is not None:
        query = query.where(s.predictions.c.model_version_id == model_version_id)
    if model_name is not None:
        query = query.where(s.predictions.c.model_name == model_name)
    if since is not None:
        query = query.where(s.predictions.c.created_at >= since)
    if labelled is not None:
        label = s.feedback.c.label
        query = query.where(label.is_not(None) if labelled else label.is_(None))
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        return [_record(r) for r in conn.execute(query).mappings().all()]


def clear_inputs(store: Store, *, ids: Sequence[str] | None = None, before: datetime | None = None) -> int:
    """Delete stored inputs (keeping every other column); returns how many were cleared."""
    where: list[Any] = [s.predictions.c.input.is_not(None)]
    if ids is not None:
        where.append(s.predictions.c.id.in_(list(ids)))
    if before is not None:
        where.append(s.predictions.c.created_at < before)
    with store.transaction() as conn:
        done = conn.execute(update(s.predictions).where(*where).values(input=None, input_bytes=0))
    return int(done.rowcount)


def clear_oldest_inputs(store: Store, max_total_bytes: int) -> int:
    """Clear the oldest stored inputs until their total size is at most ``max_total_bytes``: those of
    unlabelled predictions first, since retraining and the gate read only labelled ones.

    One short transaction per ``CLEAR_BATCH`` rows, so the server's inserts interleave with a long pass.
    """
    p = s.predictions
    with store.connect() as conn:
        excess = int(conn.execute(select(func.coalesce(func.sum(p.c.input_bytes), 0))).scalar() or 0)
        excess -= max_total_bytes
        if excess <= 0:
            return 0
        query = select(p.c.id, p.c.input_bytes).where(p.c.input_bytes > 0)
        victims: list[str] = []
        for pid, size in conn.execute(query.order_by(_labelled(), p.c.created_at)):  # unlabelled first
            if excess <= 0:
                break
            victims.append(pid)
            excess -= size
    for start in range(0, len(victims), CLEAR_BATCH):
        with store.transaction() as conn:
            for at in range(start, min(start + CLEAR_BATCH, len(victims)), 500):
                chunk = victims[at : min(at + 500, start + CLEAR_BATCH)]
                conn.execute(update(p).where(p.c.id.in_(chunk)).values(input=None, input_bytes=0))
    return len(victims)


def _labelled() -> Any:
    return exists().where(s.feedback.c.prediction_id == s.predictions.c.id)


def _joined(with_inputs: bool = True) -> Select[Any]:
    """Predictions with their latest label (if any) as extra columns."""
    latest = (
        select(s.feedback.c.prediction_id, func.max(s.feedback.c.id).label("fid"))
        .group_by(s.feedback.c.prediction_id)
        .subquery()
    )
    columns = [c for c in s.predictions.c if with_inputs or c.name != "input"]
    return (
        select(
            *columns,
            s.feedback.c.label,
            s.feedback.c.label_index,
            s.feedback.c.created_at.label("labelled_at"),
            s.feedback.c.source.label("label_source"),
        )
        .select_from(s.predictions)
        .outerjoin(latest, latest.c.prediction_id == s.predictions.c.id)
        .outerjoin(s.feedback, s.feedback.c.id == latest.c.fid)
    )


def _record(row: Any) -> Prediction:
    data = dict(row)
    data.setdefault("input", None)
    if isinstance(data["input"], memoryview):  # psycopg returns bytea as memoryview
        data["input"] = bytes(data["input"])
    return Prediction(**data)
