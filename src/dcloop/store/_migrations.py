"""Schema migrations: Alembic revisions shipped in ``dcloop/store/migrations``, run when a store opens.

Schema version N is revision ``NNNN``. Alembic keeps the revision in its own table (``VERSION_TABLE``,
named apart from the ``alembic_version`` an Optuna study may keep in the same database); the
``schema_version`` table of dcloop 0.1 is still written, so that release refuses a newer database
instead of misreading it. Opening a store takes a lock (SQLite: the write lock; PostgreSQL: an advisory
lock), so processes that open one store at once migrate it once, and a failed migration leaves the
database as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, select, text

from dcloop.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "dcloop_alembic_version"
SCRIPTS = Path(__file__).with_name("migrations")
_PG_LOCK = 0x6463_6C6F_6F70  # "dcloop": one advisory lock key per database


@cache
def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return config


@cache
def revisions() -> tuple[str, ...]:
    """Every revision id, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    return tuple(reversed([r.revision for r in script.walk_revisions()]))


def head() -> int:
    """The schema version this dcloop writes."""
    return len(revisions())


def current_version(conn: Connection) -> int:
    """The schema version of the database on ``conn``: 0 for an empty one."""
    from alembic.migration import MigrationContext

    current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    legacy = _legacy_version(conn)
    if current is None:
        return legacy
    return max(legacy, revisions().index(current) + 1 if current in revisions() else head() + 1)


def upgrade(conn: Connection, url: str, to: int | None = None) -> int:
    """Bring the database on ``conn`` to schema version ``to`` (default: the newest); returns it.

    Refuses a database written by a newer dcloop. Runs inside the caller's transaction: on any error
    nothing of the migration is kept.
    """
    from alembic import command

    _lock(conn)
    version, target = current_version(conn), head() if to is None else to
    if version > head():
        raise StoreError(
            f"Store {url} has schema version {version}, newer than this dcloop knows ({head()}). Upgrade dcloop."
        )
    if version >= target:
        return version
    config = _config()
    config.attributes["connection"] = conn
    try:
        if version > 0 and not inspect(conn).has_table(VERSION_TABLE):
            command.stamp(config, revisions()[version - 1])  # written before dcloop used Alembic
        command.upgrade(config, revisions()[target - 1])
    finally:
        config.attributes.pop("connection", None)
    _write_legacy_version(conn, version, target)
    return target


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        # pysqlite begins a transaction only before DML; begin one holding the write lock now, so the
        # DDL below is part of it and a second process waits here instead of migrating too
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})


def _legacy_version(conn: Connection) -> int:
    from dcloop.store import _schema as s

    if not inspect(conn).has_table(s.schema_version.name):
        return 0
    return max(conn.execute(select(s.schema_version.c.version)).scalars().all(), default=0)


def _write_legacy_version(conn: Connection, old: int, new: int) -> None:
    from dcloop.store import _schema as s

    s.schema_version.create(conn, checkfirst=True)
    now = datetime.now(UTC)
    for number in range(old + 1, new + 1):
        conn.execute(s.schema_version.insert().values(version=number, applied_at=now))
