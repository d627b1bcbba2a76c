"""Store access for recorded data sources (the ``sources`` table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from dcloop.errors import NotFoundError
from dcloop.store import _schema as s
from dcloop.store._records import DatasetRecord
from dcloop.store._store import Store, insert_dataset


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


def find_source(store: Store, name: str | None = None) -> SourceRecord | None:
    """The source recorded under ``name`` (None: the most recently imported), or None."""
    query = select(s.sources)
    query = query.where(s.sources.c.name == name) if name else query.order_by(s.sources.c.updated_at.desc())
    with store.engine.connect() as conn:
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
    with store.engine.connect() as conn:
        rows = conn.execute(select(s.sources).order_by(s.sources.c.name)).mappings().all()
    return [SourceRecord(**r) for r in rows]


def record_version(
    store: Store, record: DatasetRecord, kind: str, location: str | None, classes: list[str] | None
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
            )
        )
        return insert_dataset(conn, record)
