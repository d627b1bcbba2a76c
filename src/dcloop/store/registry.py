"""The model registry: model versions, their aliases and the append-only history of alias moves.

Every function takes a Store and runs one transaction; returned records are frozen. Registering a
version takes the next number, lets the caller write the artifact under it, and (optionally) moves an
alias, all in one transaction: two registrations never get the same number, and a failed copy leaves
no version behind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from dcloop.store import _schema as s
from dcloop.store._store import Store


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


def register_version(
    store: Store,
    name: str,
    build: Callable[[int], ModelVersion],
    *,
    alias: str | None = None,
    reason: str = "registered",
    actor: str = "unknown",
) -> ModelVersion:
    """Add the next version of ``name``: ``build(number)`` writes its artifact and returns its record.

    With ``alias``, the alias points at the new version in the same transaction.
    """
    with store.transaction() as conn:
        record = build(_latest_number(conn, name) + 1)
        conn.execute(s.model_versions.insert().values(**dataclasses.asdict(record)))
        if alias is not None:
            _move(conn, name, alias, record.version, kind="set", reason=reason, actor=actor)
    return record


def get_version(store: Store, name: str, version: int) -> ModelVersion | None:
    """``name@version``, or None."""
    query = select(s.model_versions).where(
        (s.model_versions.c.name == name) & (s.model_versions.c.version == version)
    )
    with store.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else ModelVersion(**row)


def latest_number(store: Store, name: str) -> int:
    """The newest version number of ``name`` (0: none registered)."""
    with store.connect() as conn:
        return _latest_number(conn, name)


def list_versions(store: Store, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first."""
    query = (
        select(s.model_versions).where(s.model_versions.c.name == name).order_by(s.model_versions.c.version)
    )
    with store.connect() as conn:
        return [ModelVersion(**r) for r in conn.execute(query).mappings().all()]


def model_names(store: Store) -> list[str]:
    """Every registered model name, sorted."""
    query = select(s.model_versions.c.name).distinct().order_by(s.model_versions.c.name)
    with store.connect() as conn:
        return list(conn.execute(query).scalars())


def aliases(store: Store, name: str) -> dict[str, int]:
    """Alias -> version number of ``name``."""
    with store.connect() as conn:
        rows = conn.execute(select(s.model_aliases).where(s.model_aliases.c.name == name)).mappings().all()
    return {r["alias"]: r["version"] for r in rows}


def move_alias(
    store: Store, name: str, alias: str, to_version: int | None, *, kind: str, reason: str, actor: str
) -> AliasMove:
    """Point ``alias`` at ``to_version`` (None removes it) and append the move to the history."""
    with store.transaction() as conn:
        return _move(conn, name, alias, to_version, kind=kind, reason=reason, actor=actor)


def alias_moves(store: Store, name: str, alias: str | None = None) -> list[AliasMove]:
    """Every move of ``name``'s aliases (or of one alias), oldest first."""
    query = select(s.alias_moves).where(s.alias_moves.c.name == name).order_by(s.alias_moves.c.id)
    if alias is not None:
        query = query.where(s.alias_moves.c.alias == alias)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [AliasMove(**{k: v for k, v in r.items() if k != "id"}) for r in rows]


def _latest_number(conn: Connection, name: str) -> int:
    latest = conn.execute(select(func.max(s.model_versions.c.version)).where(s.model_versions.c.name == name))
    return int(latest.scalar() or 0)


def _move(
    conn: Connection, name: str, alias: str, to_version: int | None, *, kind: str, reason: str, actor: str
) -> AliasMove:
    key = (s.model_aliases.c.name == name) & (s.model_aliases.c.alias == alias)
    current = conn.execute(select(s.model_aliases.c.version).where(key)).scalar()
    conn.execute(s.model_aliases.delete().where(key))
    now = datetime.now(UTC)
    if to_version is not None:
        conn.execute(
            s.model_aliases.insert().values(name=name, alias=alias, version=to_version, updated_at=now)
        )
    move = AliasMove(name, alias, current, to_version, kind, now, reason, actor)
    conn.execute(s.alias_moves.insert().values(**dataclasses.asdict(move)))
    return move
