"""Schema version 8: a data set version's modality ("image" or "text"); earlier versions are images."""

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


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("modality")
