"""Tables of the workspace store. A change here needs a new Alembic revision in ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from dcloop.store._types import UTCDateTime

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime(), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the prepared content
    Column("name", String(200), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("path", Text, nullable=False),
    Column("classes", JSON, nullable=False),
    Column("counts", JSON, nullable=False),  # {split: {class: n}}
    Column("shape", JSON, nullable=False),  # [C, H, W]; [] for text
    Column("source", JSON, nullable=False),  # provenance of the raw input
    Column("cleaning", JSON, nullable=False),  # counts per rule
    Column("parent_id", String(64), nullable=True),  # the version this one extends (feedback folded in)
    Column("modality", String(16), nullable=False, server_default="image"),  # image, text
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
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
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

# -- deployment: model registry ------------------------------------------------------------------

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),  # 1, 2, ... per name
    Column("created_at", UTCDateTime(), nullable=False),
    Column("path", Text, nullable=False),  # .dcloop/artifacts/models/<name>/<version>/model.onnx
    Column("sha256", String(64), nullable=False),  # content address of the ONNX file
    Column("classes", JSON, nullable=False),
    Column("input_shape", JSON, nullable=False),  # [C, H, W]
    Column("run_id", String(32), nullable=True),
    Column("dataset_id", String(64), nullable=True),
    Column("variant_id", String(64), nullable=True),
    Column("method", String(64), nullable=True),  # variant method (quantize, prune, ...) or "export"
    Column("metrics", JSON, nullable=False),
    Column("lineage", JSON, nullable=False),
    UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(64), primary_key=True),  # champion, challenger
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

alias_moves = Table(  # append-only: every alias move, for history and rollback
    "alias_moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, index=True),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("kind", String(16), nullable=False),  # set, promote, force, rollback
    Column("at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
)

# -- feedback: predictions and labels ------------------------------------------------------------

predictions = Table(
    "predictions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("model_version_id", String(32), nullable=False, index=True),
    Column("input_sha256", String(64), nullable=False),
    Column("input_shape", JSON, nullable=False),  # [C, H, W]
    Column("input", LargeBinary, nullable=True),  # uint8 pixels; NULL once forgotten or past retention
    Column("input_bytes", Integer, nullable=False),  # size of `input` while stored, else 0
    Column("pred_index", Integer, nullable=False),
    Column("pred_label", String(200), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("probabilities", JSON, nullable=False),  # list aligned with the model's classes
    Column("latency_ms", Float, nullable=False),
    Column("mean_intensity", Float, nullable=False),  # non-identifying summaries kept after forget
    Column("std_intensity", Float, nullable=False),
    Column("endpoint", String(32), nullable=False),  # predict, infer
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "prediction_id",
        String(32),
        ForeignKey("predictions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("label", String(200), nullable=False),
    Column("label_index", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("source", String(64), nullable=False),  # api, import:<file>, ...
)

# -- optimization: candidate variants of a trained run ---------------------------------------------

variants = Table(
    "variants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False, index=True),  # the parent run
    Column("optimization_id", String(32), nullable=False, index=True),  # one `dcloop optimize` call
    Column("method", String(32), nullable=False),  # onnx, int8, prune, distill
    Column("parent_variant_id", String(32), nullable=True),  # int8 quantizes the fp32 onnx variant
    Column("params", JSON, nullable=False),  # what the method was given (ratio, temperature, ...)
    Column("metrics", JSON, nullable=False),  # accuracy, f1, size, FLOPs, latency, energy
    Column("onnx_path", Text, nullable=False),  # .dcloop/artifacts/variants/<id>/model.onnx
    Column("onnx_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# -- data: recorded sources, so `dcloop data prepare NAME` can re-read one ---------------------------

sources = Table(
    "sources",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(32), nullable=False),  # animal-mnist, folder, idx, npz, csv, fortunes, ...
    Column("location", Text, nullable=True),  # absolute path; null for built-in data sets
    Column("classes", JSON, nullable=True),  # the classes asked for; null: all
    Column("version_id", String(64), nullable=True),  # the version last prepared from it
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("options", JSON, nullable=True),  # how to read it (text sources: column names)
)

# -- the loop: turns and their finished steps, so `dcloop loop --resume` skips what is done -------

loop_turns = Table(
    "loop_turns",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("number", Integer, nullable=False),  # 1, 2, ... per workspace
    Column("status", String(16), nullable=False),  # running, paused, finished, failed
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("config", JSON, nullable=False),  # the resolved config the turn started with
    Column("error", Text, nullable=True),  # the one-line error of a failed turn
)

loop_steps = Table(
    "loop_steps",
    metadata,
    Column("turn_id", String(32), ForeignKey("loop_turns.id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(32), primary_key=True),  # prepare, train, optimize, register, gate, ...
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # finished, skipped
    Column("outputs", JSON, nullable=False),  # ids the later steps reuse (dataset, run, version, ...)
    Column("wall_s", Float, nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
)

# -- prediction retention: hourly aggregates of the unlabelled predictions it dropped -------------

prediction_windows = Table(
    "prediction_windows",
    metadata,
    Column("model_version_id", String(32), primary_key=True),
    Column("start", UTCDateTime(), primary_key=True),  # the hour the folded predictions fell in
    Column("model_name", String(200), nullable=False, index=True),
    Column("model_version", Integer, nullable=False),
    Column("first_at", UTCDateTime(), nullable=False),
    Column("last_at", UTCDateTime(), nullable=False),
    Column("predictions", Integer, nullable=False),
    Column("confidence_sum", Float, nullable=False),
    Column("confidence_counts", JSON, nullable=False),  # 10 equal bins over [0, 1], as monitor's
    Column("predicted_classes", JSON, nullable=False),  # {class: n}
    Column("latency_ms_sum", Float, nullable=False),
    Column("mean_intensity_sum", Float, nullable=False),
    Column("std_intensity_sum", Float, nullable=False),
)

# -- the loop controller: one lease per model, the decisions it made, the turns people asked for -----

loop_leases = Table(
    "loop_leases",
    metadata,
    Column("name", String(200), primary_key=True),  # the model whose turns the lease guards
    Column("owner", String(200), nullable=False),  # host:pid:token of the holder
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),  # free for anyone after this unless renewed
)

loop_decisions = Table(
    "loop_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("model", String(200), nullable=False),
    Column("trigger", String(32), nullable=False),  # labels, alert, interval, cron, request, turn
    Column("outcome", String(32), nullable=False),  # started, resumed, not_started, finished, failed, ...
    Column("reason", Text, nullable=False),  # one line: what fired, or why nothing started
    Column("figures", JSON, nullable=False),  # the numbers behind it (labels, alert value, cost, gate)
    Column("turn_id", String(32), nullable=True),
    Column("owner", String(200), nullable=False),  # the controller (or person) that decided
)

loop_requests = Table(
    "loop_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("handled_at", UTCDateTime(), nullable=True),  # when a controller started a turn for it
)
