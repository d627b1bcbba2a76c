"""Schema version 6: hourly aggregates of the unlabelled predictions retention drops."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_windows",
        sa.Column("model_version_id", sa.String(32), primary_key=True),
        sa.Column("start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("model_name", sa.String(200), nullable=False, index=True),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("predictions", sa.Integer, nullable=False),
        sa.Column("confidence_sum", sa.Float, nullable=False),
        sa.Column("confidence_counts", sa.JSON, nullable=False),
        sa.Column("predicted_classes", sa.JSON, nullable=False),
        sa.Column("latency_ms_sum", sa.Float, nullable=False),
        sa.Column("mean_intensity_sum", sa.Float, nullable=False),
        sa.Column("std_intensity_sum", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_windows")
