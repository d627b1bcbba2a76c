"""The workspace store: SQLAlchemy Core over SQLite (WAL) by default, any URL (PostgreSQL) for a team.

Contract: a Store is safe to share between threads (each call takes its own connection from the
engine's pool and commits one transaction); records it returns are frozen copies. Its queries live in
one public module per domain (``datasets``, ``runs``, ``variants``, ``registry``, ``predictions``,
``turns``), functions that take the Store; only modules of this package touch its connections.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from dcloop.errors import NotFoundError, StoreError
from dcloop.store import _migrations


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Takes effect on a new file only (an existing one keeps its mode): pages that retention frees can
    # then be handed back to the file system with `PRAGMA incremental_vacuum` (store/retention.py).
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    _journal_wal(cursor)
    cursor.execute("PRAGMA journal_size_limit=67108864")  # the WAL file shrinks back to 64 MB after a burst
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _journal_wal(cursor: Any, wait_s: float = 30.0) -> None:
    """Put the database in WAL mode. Turning a new file to WAL takes an exclusive lock for which SQLite
    does not call the busy handler: connections opening one new store at once can get "database is
    locked" at once, so this waits for the lock the way the busy timeout would."""
    deadline = time.monotonic() + wait_s
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.05)


def _out_of_space(error: BaseException | None) -> bool:
    """SQLite's SQLITE_FULL (13) or PostgreSQL's disk_full (SQLSTATE 53100)."""
    return getattr(error, "sqlite_errorcode", None) == 13 or getattr(error, "sqlstate", None) == "53100"


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
    """An open workspace database: its engine, and the transactions the query modules run on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        try:
            with self.engine.begin() as conn:
                self.schema_version = _migrations.upgrade(conn, _redact(url))
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"Cannot open store {_redact(url)}: {exc.orig}.") from None
        except BaseException:
            self.engine.dispose()
            raise

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise StoreError(f"Store refused the change: {exc.orig}.") from None
        except OperationalError as exc:
            if _out_of_space(exc.orig):
                raise StoreError(
                    f"Store {_redact(self.url)} is out of disk space ({exc.orig}); nothing of this change "
                    "was stored. Free space or lower the feedback retention bounds; writes resume once "
                    "there is room."
                ) from None
            raise StoreError(f"Store {_redact(self.url)} failed: {exc.orig}.") from None

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads (nothing it writes is committed)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"Store {_redact(self.url)} failed: {exc.orig}.") from None

    def close(self) -> None:
        self.engine.dispose()


def resolve_ref(conn: Connection, table: Any, ref: str, kind: str) -> Any:
    """Exact id, else a unique id prefix (at least 4 characters); an ambiguous prefix is an error."""
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
