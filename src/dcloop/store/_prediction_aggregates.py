"""Aggregates of the prediction log computed in SQL (GROUP BY), never by loading rows into Python.

What the dashboard and reports plot: counts per model version and time bucket, the labelled confusion
counts per bucket (accuracy and macro F1 follow from them), the confidence histogram and the feedback
counts. Buckets are whole multiples of ``bucket_s`` seconds since the Unix epoch, on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, case, cast, func, literal_column, select

from dcloop.store import _schema as s
from dcloop.store._store import Store

p, f = s.predictions, s.feedback


def _epoch(dialect: str) -> Any:
    """Seconds since the epoch of ``predictions.created_at`` as an integer SQL expression."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", p.c.created_at), Integer)
    return cast(func.floor(func.extract("epoch", p.c.created_at)), Integer)


def _bucket(dialect: str, bucket_s: int) -> Any:
    seconds = _epoch(dialect)
    return (seconds - seconds % bucket_s).label("bucket")


def _latest_label() -> Any:
    """The newest label of each labelled prediction (a later label supersedes an earlier one)."""
    newest = select(f.c.prediction_id, func.max(f.c.id).label("fid")).group_by(f.c.prediction_id).subquery()
    return (
        select(newest.c.prediction_id, f.c.label_index)
        .join(f, f.c.id == newest.c.fid)
        .subquery("latest_label")
    )


def _filtered(query: Select[Any], model_name: str | None, since: datetime | None) -> Select[Any]:
    if model_name is not None:
        query = query.where(p.c.model_name == model_name)
    if since is not None:
        query = query.where(p.c.created_at >= since)
    return query


def prediction_span(
    store: Store, model_name: str | None, since: datetime | None
) -> tuple[datetime, datetime] | None:
    """First and last prediction time (UTC) in the filter, or None when there is none."""
    query = _filtered(select(func.min(p.c.created_at), func.max(p.c.created_at)), model_name, since)
    with store.connect() as conn:
        first, last = conn.execute(query).one()
    if first is None:
        return None
    return tuple(_utc(t) for t in (first, last))  # type: ignore[return-value]


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # min()/max() of a SQLite column skip the column type
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def prediction_counts_by_bucket(
    store: Store, bucket_s: int, model_name: str | None, since: datetime | None
) -> list[dict[str, Any]]:
    """Per model version and bucket: predictions, their confidence sum and latency sum."""
    dialect = store.engine.dialect.name
    bucket = _bucket(dialect, bucket_s)
    query = _filtered(
        select(
            p.c.model_name,
            p.c.model_version,
            bucket,
            func.count().label("predictions"),
            func.sum(p.c.confidence).label("confidence_sum"),
            func.sum(p.c.latency_ms).label("latency_ms_sum"),
        ).group_by(p.c.model_name, p.c.model_version, literal_column("bucket")),
        model_name,
        since,
    ).order_by(literal_column("bucket"))
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def labelled_confusion_by_bucket(
    store: Store, bucket_s: int | None, model_name: str | None, since: datetime | None
) -> list[dict[str, Any]]:
    """Per model version, bucket (0 when ``bucket_s`` is None), true and predicted class: labelled counts."""
    dialect = store.engine.dialect.name
    latest = _latest_label()
    bucket = _bucket(dialect, bucket_s) if bucket_s else literal_column("0").label("bucket")
    query = _filtered(
        select(
            p.c.model_name,
            p.c.model_version,
            bucket,
            latest.c.label_index.label("true_index"),
            p.c.pred_index,
            func.count().label("n"),
        )
        .join(latest, latest.c.prediction_id == p.c.id)
        .group_by(
            p.c.model_name, p.c.model_version, literal_column("bucket"), latest.c.label_index, p.c.pred_index
        ),
        model_name,
        since,
    ).order_by(literal_column("bucket"))
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def confidence_histogram(
    store: Store, bins: int, model_name: str | None, since: datetime | None
) -> list[dict[str, Any]]:
    """Per model version: predictions in each of ``bins`` equal confidence bins over [0, 1]."""
    scaled = p.c.confidence * bins
    # SQLite's CAST truncates (confidence is never negative); PostgreSQL's rounds, so floor it there.
    index = cast(scaled if store.engine.dialect.name == "sqlite" else func.floor(scaled), Integer)
    query = _filtered(
        select(p.c.model_name, p.c.model_version, index.label("bin"), func.count().label("n")).group_by(
            p.c.model_name, p.c.model_version, literal_column("bin")
        ),
        model_name,
        since,
    )
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        row["bin"] = min(max(int(row["bin"]), 0), bins - 1)  # confidence 1.0 joins the top bin (rows add up)
    return rows


def feedback_counts(
    store: Store, holdout: float, model_name: str | None, since: datetime | None
) -> dict[str, int]:
    """Predictions logged, labelled, and labelled with a stored input on the held-out side.

    The held-out side is the one ``predictions.in_holdout`` picks: the first 8 bytes of the sha256 of
    the pixels below ``holdout * 2**64``; compared here as fixed-width lowercase hex text.
    """
    threshold = format(int(holdout * 2**64), "016x") if holdout < 1 else "g"  # "g" sorts after any hex
    labelled = select(f.c.prediction_id).distinct().subquery("labelled")
    held = and_(
        labelled.c.prediction_id.is_not(None),
        p.c.input_bytes > 0,
        func.substr(p.c.input_sha256, 1, 16) < threshold,
    )
    query = select(  # one pass over the log: every count is a column of the same scan
        func.count(),
        func.count(labelled.c.prediction_id),
        func.coalesce(func.sum(case((held, 1), else_=0)), 0),
    ).select_from(p.outerjoin(labelled, labelled.c.prediction_id == p.c.id))
    with store.connect() as conn:
        logged, labelled_n, held_n = conn.execute(_filtered(query, model_name, since)).one()
    return {"predictions": int(logged), "labelled": int(labelled_n), "held_out": int(held_n)}
