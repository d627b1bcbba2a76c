"""Training runs (and trials, distillations, fine-tunes) and their per-epoch metrics.

Every function takes a Store and runs one transaction; returned records are frozen.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select, update

from dcloop.errors import NotFoundError
from dcloop.store import _schema as s
from dcloop.store._records import EpochRecord, RunRecord
from dcloop.store._store import Store, resolve_ref

UNFINISHED = ("running", "failed", "stopped")
LATEST = "latest"  # as a run reference: the newest run in the workspace


def add_run(store: Store, record: RunRecord) -> RunRecord:
    """Insert a run; its data set version must be stored (else a StoreError, nothing written)."""
    with store.transaction() as conn:
        conn.execute(s.runs.insert().values(**dataclasses.asdict(record)))
    return record


def update_run(store: Store, run_id: str, **changes: Any) -> RunRecord:
    """Change status/metrics/finished_at of a run in one transaction; a final status stamps finished_at."""
    if changes.get("status") in {"finished", "failed", "stopped"} and "finished_at" not in changes:
        changes["finished_at"] = datetime.now(UTC)
    with store.transaction() as conn:
        done = conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(**changes))
        if done.rowcount == 0:
            raise NotFoundError(f"No run {run_id!r}.")
    return get_run(store, run_id)


def get_run(store: Store, ref: str) -> RunRecord:
    """A run by id or unique id prefix; ``"latest"`` is the newest run of any kind."""
    if ref == LATEST:
        newest = recent_runs(store, limit=1)
        if not newest:
            raise NotFoundError(
                "No runs in this workspace yet, so no 'latest'; start one with `dcloop train`."
            )
        return newest[0]
    with store.connect() as conn:
        row = resolve_ref(conn, s.runs, ref, "run")
    if row is None:
        raise NotFoundError(f"No run {ref!r}. See `dcloop runs list`.")
    return RunRecord(**row)


def list_runs(store: Store, kind: str | None = None, dataset_id: str | None = None) -> list[RunRecord]:
    """Runs oldest first, optionally of one kind or one data set version."""
    query = select(s.runs).order_by(s.runs.c.created_at)
    if kind is not None:
        query = query.where(s.runs.c.kind == kind)
    if dataset_id is not None:
        query = query.where(s.runs.c.dataset_id == dataset_id)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [RunRecord(**r) for r in rows]


def unfinished_runs(store: Store, kind: str | None = None) -> list[RunRecord]:
    """Runs that did not finish (killed, failed or stopped), newest first."""
    return _newest_first(store, select(s.runs).where(s.runs.c.status.in_(UNFINISHED)), kind)


def recent_runs(store: Store, limit: int = 50, kind: str | None = None) -> list[RunRecord]:
    """The newest ``limit`` runs, newest first."""
    return _newest_first(store, select(s.runs).limit(limit), kind)


def log_epoch(store: Store, run_id: str, epoch: int, metrics: dict[str, float], wall_s: float) -> None:
    """Record one epoch's metrics; logging the same epoch again (after a resume) replaces it."""
    with store.transaction() as conn:
        conn.execute(s.epochs.delete().where((s.epochs.c.run_id == run_id) & (s.epochs.c.epoch == epoch)))
        conn.execute(s.epochs.insert().values(run_id=run_id, epoch=epoch, metrics=metrics, wall_s=wall_s))


def list_epochs(store: Store, run_id: str) -> list[EpochRecord]:
    """A run's epochs in order."""
    query = select(s.epochs).where(s.epochs.c.run_id == run_id).order_by(s.epochs.c.epoch)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [EpochRecord(**r) for r in rows]


def _newest_first(store: Store, query: Select[Any], kind: str | None) -> list[RunRecord]:
    query = query.order_by(s.runs.c.created_at.desc())
    if kind is not None:
        query = query.where(s.runs.c.kind == kind)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [RunRecord(**r) for r in rows]
