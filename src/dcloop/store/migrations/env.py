"""Alembic environment: runs on the connection ``dcloop.store._migrations`` hands over."""

from __future__ import annotations

from alembic import context

from dcloop.store._migrations import VERSION_TABLE
from dcloop.store._schema import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters a table by copying it; autogenerate writes batch blocks
)
with context.begin_transaction():
    context.run_migrations()
