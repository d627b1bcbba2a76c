"""Data set versions and the sources they were prepared from (tables ``datasets`` and ``sources``).

Every function takes a Store and runs one transaction; returned records are frozen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from dcloop.errors import NotFoundError
from dcloop.store import _schema as s
from dcloop.store._records import DatasetRecord
from dcloop.store._store import Store, resolve_ref


@dataclass(frozen=True)
class SourceRecord:
    """A source recorded by `dcloop data import`: what to read again on `dcloop data prepare`."""

    name: str
    kind: str
    location: str | None
    classes: list[str] | None
    version_id: str | None
    created_at: datetime
    updated_at: datetime
    options: dict[str, Any] | None = None  # how to read it again (a text source's column names)


def add_dataset(store: Store, record: DatasetRecord) -> DatasetRecord:
    """Insert a version; adding the same content-addressed id again returns the stored one."""
    with store.transaction() as conn:
        return _insert(conn, record)


def get_dataset(store: Store, ref: str) -> DatasetRecord:
    """A version by id, unique id prefix, or data set name (its newest version)."""
    with store.connect() as conn:
        row = resolve_ref(conn, s.datasets, ref, "data set version")
        if row is None:
            query = (
                select(s.datasets).where(s.datasets.c.name == ref).order_by(s.datasets.c.created_at.desc())
            )
            row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"No data set version {ref!r}. See `dcloop data list`.")
    return DatasetRecord(**row)


def list_datasets(store: Store) -> list[DatasetRecord]:
    """Every version, oldest first."""
    with store.connect() as conn:
        rows = conn.execute(select(s.datasets).order_by(s.datasets.c.created_at)).mappings().all()
    return [DatasetRecord(**r) for r in rows]


def find_source(store: Store, name: str | None = None) -> SourceRecord | None:
    """The source recorded under ``name`` (None: the most recently imported), or None."""
    query = select(s.sources)
    query = query.where(s.sources.c.name == name) if name else query.order_by(s.sources.c.updated_at.desc())
    with store.connect() as conn:
        row = conn.execute(query).mappings().first()
    return SourceRecord(**row) if row is not None else None


def get_source(store: Store, name: str | None = None) -> SourceRecord:
    """Like :func:`find_source`, but a missing source is a NotFoundError naming the recorded ones."""
    found = find_source(store, name)
    if found is None:
        known = ", ".join(r.name for r in list_sources(store)) or "none yet"
        what = f"No data source named {name!r}" if name else "No data source recorded"
        raise NotFoundError(f"{what}. Recorded: {known}. Add one with `dcloop data import SOURCE`.")
    return found


def list_sources(store: Store) -> list[SourceRecord]:
    """Every recorded source, by name."""
    with store.connect() as conn:
        rows = conn.execute(select(s.sources).order_by(s.sources.c.name)).mappings().all()
    return [SourceRecord(**r) for r in rows]


def record_version(
    store: Store,
    record: DatasetRecord,
    kind: str,
    location: str | None,
    classes: list[str] | None,
    options: dict[str, Any] | None = None,
) -> DatasetRecord:
    """In one transaction: record the source under the version's name and add the version.

    A version whose content id is already stored is not added again; the stored record is returned
    (it keeps the name it was first stored under; the source's name still resolves to it).
    """
    now = datetime.now(UTC)
    with store.transaction() as conn:
        row = conn.execute(select(s.sources.c.created_at).where(s.sources.c.name == record.name)).first()
        conn.execute(s.sources.delete().where(s.sources.c.name == record.name))
        conn.execute(
            s.sources.insert().values(
                name=record.name,
                kind=kind,
                location=location,
                classes=classes,
                version_id=record.id,
                created_at=row[0] if row is not None else now,
                updated_at=now,
                options=options,
            )
        )
        return _insert(conn, record)


def _insert(conn: Connection, record: DatasetRecord) -> DatasetRecord:
    """Insert a version unless its id is stored; return the stored record as every later read sees it."""
    query = select(s.datasets).where(s.datasets.c.id == record.id)
    if conn.execute(query).first() is None:
        conn.execute(s.datasets.insert().values(**dataclasses.asdict(record)))
    return DatasetRecord(**conn.execute(query).mappings().one())
