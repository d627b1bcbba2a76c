"""Run queries beyond the basic Store methods: what `--resume` and `dcloop runs list` need."""

from __future__ import annotations

from sqlalchemy import select

from dcloop.store import _schema as s
from dcloop.store._records import RunRecord
from dcloop.store._store import Store

UNFINISHED = ("running", "failed", "stopped")


def unfinished_runs(store: Store, kind: str | None = None) -> list[RunRecord]:
    """Runs that did not finish (killed, failed or stopped), newest first."""
    query = select(s.runs).where(s.runs.c.status.in_(UNFINISHED)).order_by(s.runs.c.created_at.desc())
    if kind is not None:
        query = query.where(s.runs.c.kind == kind)
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [RunRecord(**r) for r in rows]


def recent_runs(store: Store, limit: int = 50, kind: str | None = None) -> list[RunRecord]:
    """The newest ``limit`` runs, newest first."""
    query = select(s.runs).order_by(s.runs.c.created_at.desc()).limit(limit)
    if kind is not None:
        query = query.where(s.runs.c.kind == kind)
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [RunRecord(**r) for r in rows]
