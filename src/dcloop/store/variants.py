"""Optimization variants: candidate deployable forms of a trained run (table ``variants``).

Every function takes a Store and runs one transaction; returned records are frozen. Ids resolve
exactly or by a unique prefix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dcloop.errors import NotFoundError
from dcloop.store import _schema as s
from dcloop.store._store import Store, resolve_ref


@dataclass(frozen=True)
class VariantRecord:
    """One optimized form of a run: its method, what it was given, how it measured, its ONNX file."""

    id: str
    run_id: str
    optimization_id: str
    method: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    onnx_path: str
    onnx_sha256: str
    created_at: datetime
    parent_variant_id: str | None = None

    @property
    def short_id(self) -> str:
        return self.id[:12]


def add_variants(store: Store, records: list[VariantRecord]) -> list[VariantRecord]:
    """Insert all variants of one optimization in one transaction (all or none)."""
    with store.transaction() as conn:
        for record in records:
            conn.execute(s.variants.insert().values(**dataclasses.asdict(record)))
    return records


def get_variant(store: Store, ref: str) -> VariantRecord:
    """A variant by id or unique id prefix (at least 4 characters)."""
    with store.connect() as conn:
        row = resolve_ref(conn, s.variants, ref, "variant")
    if row is None:
        raise NotFoundError(f"No variant {ref!r}. See `dcloop variants list`.")
    return VariantRecord(**row)


def list_variants(
    store: Store, run_id: str | None = None, optimization_id: str | None = None
) -> list[VariantRecord]:
    """Variants in creation order, optionally of one run or one optimization."""
    query = select(s.variants).order_by(s.variants.c.created_at, s.variants.c.id)
    if run_id is not None:
        query = query.where(s.variants.c.run_id == run_id)
    if optimization_id is not None:
        query = query.where(s.variants.c.optimization_id == optimization_id)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [VariantRecord(**r) for r in rows]
