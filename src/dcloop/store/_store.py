"""The workspace store: SQLAlchemy Core over SQLite (WAL) by default, any URL (PostgreSQL) for a team.

Contract: a Store is safe to share between threads (each call takes its own connection from the
engine's pool and commits one transaction); records it returns are frozen copies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from dcloop.errors import NotFoundError, StoreError
from dcloop.store import _migrations
from dcloop.store import _schema as s
from dcloop.store._records import DatasetRecord, EpochRecord, RunRecord


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreError(f"Store URL {url!r} needs {exc.name}: pip install 'dcloop[postgres]'.") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"Store URL {url!r} is not a valid SQLAlchemy URL: {exc}.") from None


def _redact(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, creds = head.partition("//")
    return f"{scheme}//{creds.split(':', 1)[0]}:***@{tail}"


class Store:
    """Records of data set versions, runs and everything later stages add. See the module contract."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        try:
            with self.engine.begin() as conn:
                self.schema_version = _migrations.upgrade(conn, _redact(url))
        except OperationalError as exc:
            raise StoreError(f"Cannot open store {_redact(url)}: {exc.orig}.") from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise StoreError(f"Store refused the change: {exc.orig}.") from None
        except OperationalError as exc:
            raise StoreError(f"Store {_redact(self.url)} failed: {exc.orig}.") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- data set versions -------------------------------------------------------------------------

    def add_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Insert a version; adding the same content-addressed id again returns the stored one."""
        with self.transaction() as conn:
            return insert_dataset(conn, record)

    def get_dataset(self, ref: str) -> DatasetRecord:
        """A version by id, unique id prefix, or data set name (its newest version)."""
        with self.engine.connect() as conn:
            row = _resolve(conn, s.datasets, ref, "data set version")
            if row is None:
                row = (
                    conn.execute(
                        select(s.datasets)
                        .where(s.datasets.c.name == ref)
                        .order_by(s.datasets.c.created_at.desc())
                    )
                    .mappings()
                    .first()
                )
        if row is None:
            raise NotFoundError(f"No data set version {ref!r}. See `dcloop data list`.")
        return DatasetRecord(**row)

    def list_datasets(self) -> list[DatasetRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.datasets).order_by(s.datasets.c.created_at)).mappings().all()
        return [DatasetRecord(**r) for r in rows]

    # -- runs --------------------------------------------------------------------------------------

    def add_run(self, record: RunRecord) -> RunRecord:
        with self.transaction() as conn:
            conn.execute(s.runs.insert().values(**dataclasses.asdict(record)))
        return record

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Change status/metrics/finished_at of a run in one transaction."""
        if changes.get("status") in {"finished", "failed", "stopped"} and "finished_at" not in changes:
            changes["finished_at"] = datetime.now(UTC)
        with self.transaction() as conn:
            done = conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(**changes))
            if done.rowcount == 0:
                raise NotFoundError(f"No run {run_id!r}.")
        return self.get_run(run_id)

    def get_run(self, ref: str) -> RunRecord:
        """A run by id or unique id prefix."""
        with self.engine.connect() as conn:
            row = _resolve(conn, s.runs, ref, "run")
        if row is None:
            raise NotFoundError(f"No run {ref!r}. See `dcloop runs list`.")
        return RunRecord(**row)

    def list_runs(self, kind: str | None = None, dataset_id: str | None = None) -> list[RunRecord]:
        query = select(s.runs).order_by(s.runs.c.created_at)
        if kind is not None:
            query = query.where(s.runs.c.kind == kind)
        if dataset_id is not None:
            query = query.where(s.runs.c.dataset_id == dataset_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [RunRecord(**r) for r in rows]

    def log_epoch(self, run_id: str, epoch: int, metrics: dict[str, float], wall_s: float) -> None:
        """Record one epoch's metrics; logging the same epoch again (after a resume) replaces it."""
        with self.transaction() as conn:
            conn.execute(s.epochs.delete().where((s.epochs.c.run_id == run_id) & (s.epochs.c.epoch == epoch)))
            conn.execute(s.epochs.insert().values(run_id=run_id, epoch=epoch, metrics=metrics, wall_s=wall_s))

    def list_epochs(self, run_id: str) -> list[EpochRecord]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(s.epochs).where(s.epochs.c.run_id == run_id).order_by(s.epochs.c.epoch))
                .mappings()
                .all()
            )
        return [EpochRecord(**r) for r in rows]


def insert_dataset(conn: Connection, record: DatasetRecord) -> DatasetRecord:
    """Insert a version unless its id is stored; return the stored record as every later read sees it."""
    query = select(s.datasets).where(s.datasets.c.id == record.id)
    if conn.execute(query).first() is None:
        conn.execute(s.datasets.insert().values(**dataclasses.asdict(record)))
    return DatasetRecord(**conn.execute(query).mappings().one())


def _resolve(conn: Connection, table: Any, ref: str, kind: str) -> Any:
    """Exact id, else a unique id prefix; an ambiguous prefix is an error."""
    row = conn.execute(select(table).where(table.c.id == ref)).mappings().first()
    if row is not None or len(ref) < 4:
        return row
    rows = conn.execute(select(table).where(table.c.id.startswith(ref)).limit(2)).mappings().all()
    if len(rows) > 1:
        raise NotFoundError(f"{kind.capitalize()} id prefix {ref!r} is ambiguous; give more characters.")
    return rows[0] if rows else None


_open: dict[str, Store] = {}


def open_store(url: str) -> Store:
    """The store at ``url`` (created and migrated on first use); one Store per URL per process."""
    store = _open.get(url)
    if store is None:
        store = _open[url] = Store(url)
    return store


def close_store(url: str) -> bool:
    """Close this process's connections to the store at ``url`` (SQLite: checkpoints its WAL into the
    file), e.g. before the file is copied or deleted; the next ``open_store`` reopens it. False if it
    was not open."""
    store = _open.pop(url, None)
    if store is None:
        return False
    store.close()
    return True
