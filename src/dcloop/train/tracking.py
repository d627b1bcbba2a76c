"""Mirror a finished run to MLflow (params, per-epoch and final metrics, report and model files).

The workspace store stays the source of truth: a failure here is logged as a warning and never loses
the run. MLflow is imported only when a run is mirrored.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dcloop.store import EpochRecord, RunRecord

log = logging.getLogger(__name__)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def mirror_run(
    tracking_uri: str,
    experiment: str,
    artifact_root: Path,
    run: RunRecord,
    epochs: list[EpochRecord],
    files: list[Path],
) -> str | None:
    """Log ``run`` to MLflow; returns the MLflow run id, or None when mirroring failed."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        return _mirror(tracking_uri, experiment, artifact_root, run, epochs, files)
    except Exception as exc:  # MLflow raises many kinds; the run is already safe in the store
        log.warning("MLflow mirror of run %s to %s failed: %s", run.id[:12], tracking_uri, exc)
        return None


def _mirror(
    tracking_uri: str,
    experiment: str,
    artifact_root: Path,
    run: RunRecord,
    epochs: list[EpochRecord],
    files: list[Path],
) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    # MLflow's own INFO lines (database set-up) would interleave with dcloop's tables.
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        artifact_root.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(
            experiment, artifact_location=artifact_root.resolve().as_uri()
        )
    tags = {"dcloop.run_id": run.id, "dcloop.kind": run.kind, "dcloop.dataset_id": run.dataset_id}
    mlrun = client.create_run(experiment_id, run_name=run.name, tags=tags)
    run_id = mlrun.info.run_id
    params = [Param(k, str(v)[:6000]) for k, v in _flatten(run.config).items()]
    params.append(Param("dataset_id", run.dataset_id))
    for chunk in _chunks(params, 100):
        client.log_batch(run_id, params=list(chunk))
    now = int(time.time() * 1000)
    metrics = [
        Metric(name, float(value), now, record.epoch)
        for record in epochs
        for name, value in record.metrics.items()
        if isinstance(value, int | float)
    ]
    final = {
        k: v
        for k, v in _flatten(run.metrics).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    metrics += [
        Metric(f"test_{k}" if not k.startswith("cost.") else k, float(v), now, 0) for k, v in final.items()
    ]
    for chunk in _chunks(metrics, 1000):
        client.log_batch(run_id, metrics=list(chunk))
    for path in files:
        if path.is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FINISHED" if run.status == "finished" else "FAILED")
    return run_id
