"""Alembic environment: runs on the connection ``dcloop.store._migrations`` hands over."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from dcloop.store._migrations import VERSION_TABLE
from dcloop.store._schema import metadata
from dcloop.store._types import UTCDateTime


def _render_item(kind: str, item: Any, _context: Any) -> str | Literal[False]:
    """Revisions spell column types with SQLAlchemy's own, never dcloop's (a revision is frozen)."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters a table by copying it; autogenerate writes batch blocks
    render_item=_render_item,
)
with context.begin_transaction():
    context.run_migrations()
