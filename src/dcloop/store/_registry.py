"""Store queries of the model registry: model versions, aliases and the append-only alias history.

Functions that take a Connection run inside the caller's transaction, so a version number, its
artifact and an alias move commit together; functions that take a Store open their own connection.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from dcloop.store import _schema as s


@dataclass(frozen=True)
class ModelVersion:
    """One registered, immutable model: an ONNX file addressed by its sha256, and its lineage."""

    id: str
    name: str
    version: int
    created_at: datetime
    path: str
    sha256: str
    classes: list[str]
    input_shape: list[int]  # [C, H, W]
    run_id: str | None
    dataset_id: str | None
    variant_id: str | None
    method: str | None
    metrics: dict[str, Any]
    lineage: dict[str, Any]

    @property
    def ref(self) -> str:
        """``name@version``, the reference every command accepts."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias (``to_version`` None: the alias was removed)."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    kind: str  # set, promote, force, rollback
    at: datetime
    reason: str
    actor: str


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every record carries UTC-aware ones on every backend."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _version(row: Any) -> ModelVersion:
    return ModelVersion(**{**row, "created_at": _utc(row["created_at"])})


def next_version(conn: Connection, name: str) -> int:
    latest = conn.execute(select(func.max(s.model_versions.c.version)).where(s.model_versions.c.name == name))
    return int(latest.scalar() or 0) + 1


def insert_version(conn: Connection, record: ModelVersion) -> None:
    conn.execute(s.model_versions.insert().values(**dataclasses.asdict(record)))


def get_version(conn: Connection, name: str, version: int) -> ModelVersion | None:
    query = select(s.model_versions).where(
        (s.model_versions.c.name == name) & (s.model_versions.c.version == version)
    )
    row = conn.execute(query).mappings().first()
    return None if row is None else _version(row)


def latest_version(conn: Connection, name: str) -> ModelVersion | None:
    return get_version(conn, name, next_version(conn, name) - 1)


def list_versions(conn: Connection, name: str) -> list[ModelVersion]:
    query = (
        select(s.model_versions).where(s.model_versions.c.name == name).order_by(s.model_versions.c.version)
    )
    return [_version(r) for r in conn.execute(query).mappings().all()]


def model_names(conn: Connection) -> list[str]:
    return list(
        conn.execute(select(s.model_versions.c.name).distinct().order_by(s.model_versions.c.name)).scalars()
    )


def aliases(conn: Connection, name: str) -> dict[str, int]:
    rows = conn.execute(select(s.model_aliases).where(s.model_aliases.c.name == name)).mappings().all()
    return {r["alias"]: r["version"] for r in rows}


def move_alias(
    conn: Connection, name: str, alias: str, to_version: int | None, *, kind: str, reason: str, actor: str
) -> AliasMove:
    """Point ``alias`` at ``to_version`` (None removes it) and append the move to the history."""
    now = datetime.now(UTC)
    key = (s.model_aliases.c.name == name) & (s.model_aliases.c.alias == alias)
    current = conn.execute(select(s.model_aliases.c.version).where(key)).scalar()
    conn.execute(s.model_aliases.delete().where(key))
    if to_version is not None:
        conn.execute(
            s.model_aliases.insert().values(name=name, alias=alias, version=to_version, updated_at=now)
        )
    move = AliasMove(name, alias, current, to_version, kind, now, reason, actor)
    conn.execute(s.alias_moves.insert().values(**dataclasses.asdict(move)))
    return move


def alias_moves(conn: Connection, name: str, alias: str | None = None) -> list[AliasMove]:
    query = select(s.alias_moves).where(s.alias_moves.c.name == name).order_by(s.alias_moves.c.id)
    if alias is not None:
        query = query.where(s.alias_moves.c.alias == alias)
    rows = conn.execute(query).mappings().all()
    return [AliasMove(**{**{k: v for k, v in r.items() if k != "id"}, "at": _utc(r["at"])}) for r in rows]
