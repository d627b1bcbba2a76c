"""Schema version 8: a data set version's modality ("image" or "text"; earlier versions are images) and
how a recorded source is read (its options: a text source's column names)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("modality", sa.String(16), nullable=False, server_default="image"))
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("options", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("options")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("modality")
