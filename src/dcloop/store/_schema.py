"""Tables of the workspace store. Changes go through a new entry in ``_migrations.MIGRATIONS``."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the prepared content
    Column("name", String(200), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("path", Text, nullable=False),
    Column("classes", JSON, nullable=False),
    Column("counts", JSON, nullable=False),  # {split: {class: n}}
    Column("shape", JSON, nullable=False),  # [C, H, W]
    Column("source", JSON, nullable=False),  # provenance of the raw input
    Column("cleaning", JSON, nullable=False),  # counts per rule
    Column("parent_id", String(64), nullable=True),  # the version this one extends (feedback folded in)
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),  # train, trial, distill, finetune
    Column("name", String(200), nullable=False),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=False, index=True),
    Column("model", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # running, finished, failed, stopped
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("config", JSON, nullable=False),  # resolved train config
    Column("lineage", JSON, nullable=False),  # seed, code version, packages, environment
    Column("metrics", JSON, nullable=False),  # final test metrics and cost
    Column("path", Text, nullable=False),  # artifact folder
    Column("parent_run_id", String(32), nullable=True),
)

epochs = Table(
    "epochs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("metrics", JSON, nullable=False),
    Column("wall_s", Float, nullable=False),
)
