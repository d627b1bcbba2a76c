"""Run queries beyond the basic Store methods: what `--resume` and `dcloop runs list` need."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from dcloop.store import _schema as s
from dcloop.store._records import RunRecord
from dcloop.store._store import Store

UNFINISHED = ("running", "failed", "stopped")


def unfinished_runs(store: Store, kind: str | None = None) -> list[RunRecord]:
    """Runs that did not finish (killed, failed or stopped), newest first."""
    return _newest_first(store, select(s.runs).where(s.runs.c.status.in_(UNFINISHED)), kind)


def recent_runs(store: Store, limit: int = 50, kind: str | None = None) -> list[RunRecord]:
    """The newest ``limit`` runs, newest first."""
    return _newest_first(store, select(s.runs).limit(limit), kind)


def _newest_first(store: Store, query: Select[Any], kind: str | None) -> list[RunRecord]:
    query = query.order_by(s.runs.c.created_at.desc())
    if kind is not None:
        query = query.where(s.runs.c.kind == kind)
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [RunRecord(**r) for r in rows]
