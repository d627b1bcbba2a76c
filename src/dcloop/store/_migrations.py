"""Ordered schema migrations. Version N is ``MIGRATIONS[N - 1]``; each runs in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, inspect, select

from dcloop.errors import StoreError
from dcloop.store import _schema as s


def _m001_foundation(conn: Connection) -> None:
    for table in (s.datasets, s.runs, s.epochs):
        table.create(conn)


def _m002_registry_and_feedback(conn: Connection) -> None:
    for table in (s.model_versions, s.model_aliases, s.alias_moves, s.predictions, s.feedback):
        table.create(conn)


def _m003_variants(conn: Connection) -> None:
    s.variants.create(conn)


def _m004_sources(conn: Connection) -> None:
    s.sources.create(conn)


def _m005_loop_turns(conn: Connection) -> None:
    for table in (s.loop_turns, s.loop_steps):
        table.create(conn)


MIGRATIONS: list[Callable[[Connection], None]] = [
    _m001_foundation,
    _m002_registry_and_feedback,
    _m003_variants,
    _m004_sources,
    _m005_loop_turns,
]


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    versions = conn.execute(select(s.schema_version.c.version)).scalars().all()
    return max(versions, default=0)


def upgrade(conn: Connection, url: str) -> int:
    """Apply missing migrations; refuse a database written by a newer dcloop."""
    if not inspect(conn).has_table("schema_version"):
        s.schema_version.create(conn)
    version = current_version(conn)
    if version > len(MIGRATIONS):
        raise StoreError(
            f"Store {url} has schema version {version}, newer than this dcloop knows "
            f"({len(MIGRATIONS)}). Upgrade dcloop."
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        MIGRATIONS[number - 1](conn)
        conn.execute(s.schema_version.insert().values(version=number, applied_at=datetime.now(UTC)))
    return len(MIGRATIONS)
