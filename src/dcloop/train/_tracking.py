"""Mirror dcloop's work to MLflow while it happens: training runs live (opened when training starts,
one metric step per epoch as it ends, closed with the run's outcome), and one MLflow run per
optimization, tuning study summary or monitor check.

The workspace store stays the source of truth: any MLflow failure is logged once as a warning and
never stops or loses the work. MLflow is imported only when something is mirrored.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dcloop.store import RunRecord

log = logging.getLogger(__name__)

# MLflow run status for each final dcloop run status.
_STATUS = {"finished": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}


class Tracker:
    """Where MLflow records go: the tracking URI, the experiment and the artifact folder."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path) -> None:
        self.tracking_uri, self.experiment, self.artifact_root = tracking_uri, experiment, artifact_root
        self._client: Any = None
        self._experiment_id: str | None = None

    def client(self) -> Any:
        if self._client is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            from mlflow.tracking import MlflowClient

            # MLflow's own INFO lines (creating its database) would interleave with dcloop's output;
            # importing mlflow sets up its logger, so this comes after the import.
            logging.getLogger("mlflow").setLevel(logging.WARNING)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            client = self.client()
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = str(found.experiment_id)
            else:
                self.artifact_root.mkdir(parents=True, exist_ok=True)
                self._experiment_id = str(
                    client.create_experiment(
                        self.experiment, artifact_location=self.artifact_root.resolve().as_uri()
                    )
                )
        return self._experiment_id

    def find_run(self, dcloop_run_id: str) -> str | None:
        """The MLflow run that mirrors a dcloop run, if one was opened before (a resumed run)."""
        found = self.client().search_runs(
            [self.experiment_id()], filter_string=f"tags.`dcloop.run_id` = '{dcloop_run_id}'", max_results=1
        )
        return found[0].info.run_id if found else None


def tracker_for(workspace: Any) -> Tracker | None:
    """The workspace's tracker, or None when `tracking.mlflow` is off."""
    tracking = workspace.config.tracking
    if not tracking.mlflow:
        return None
    return Tracker(workspace.mlflow_uri, tracking.experiment, workspace.state / "mlartifacts")


class LiveRun:
    """The MLflow run of one training run, open while it trains.

    Every method swallows MLflow's errors after one warning: tracking must never fail training.
    """

    def __init__(self, tracker: Tracker, run: RunRecord) -> None:
        self.tracker, self.run = tracker, run
        self.mlflow_id: str | None = None
        self._failed = False

    def start(self) -> LiveRun:
        """Open (or, for a resumed run, reopen) the MLflow run and log the recipe as params."""
        self._guard("start", self._start)
        return self

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._guard("log an epoch", lambda: self._log_metrics(metrics, step=epoch))

    def log_epochs(self, epochs: Iterable[tuple[int, Mapping[str, float]]]) -> None:
        """Epochs trained elsewhere (torchrun workers), logged once they are in the store."""
        for epoch, metrics in epochs:
            self.log_epoch(epoch, metrics)

    def finish(self, run: RunRecord, files: Sequence[Path] = ()) -> str | None:
        """Log the final metrics and files and close the run with the dcloop run's status."""

        def finish() -> None:
            final = {
                (k if k.startswith("cost.") else f"test_{k}"): v for k, v in _numbers(run.metrics).items()
            }
            self._log_metrics(final, step=0)
            for path in files:
                if path.is_file():
                    self.tracker.client().log_artifact(self.mlflow_id, str(path))

        self._guard("finish", finish)
        self.end(run.status)
        return self.mlflow_id

    def end(self, status: str) -> None:
        """Close the MLflow run: FINISHED, FAILED or KILLED (stopped, e.g. a pruned trial)."""
        self._guard(
            "close",
            lambda: self.tracker.client().set_terminated(self.mlflow_id, _STATUS.get(status, "FAILED")),
        )

    def _start(self) -> None:
        client, run = self.tracker.client(), self.run
        self.mlflow_id = self.tracker.find_run(run.id)
        if self.mlflow_id is not None:
            client.update_run(self.mlflow_id, status="RUNNING")
            return
        tags = {"dcloop.run_id": run.id, "dcloop.kind": run.kind, "dcloop.dataset_id": run.dataset_id}
        if run.parent_run_id:
            tags["dcloop.init_from"] = run.parent_run_id
        created = client.create_run(self.tracker.experiment_id(), run_name=run.name, tags=tags)
        self.mlflow_id = str(created.info.run_id)
        _log_params(client, self.mlflow_id, {**run.config, "dataset_id": run.dataset_id})

    def _log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in _numbers(metrics).items()]
        for chunk in _chunks(batch, 1000):
            self.tracker.client().log_batch(self.mlflow_id, metrics=list(chunk))

    def _guard(self, what: str, action: Any) -> None:
        if self._failed or (self.mlflow_id is None and what != "start"):
            return
        try:
            action()
        except Exception as exc:  # MLflow raises many kinds; the run is safe in the store
            self._failed = True
            log.warning(
                "MLflow: could not %s run %s at %s (%s); the run goes on, recorded in the workspace.",
                what,
                self.run.id[:12],
                self.tracker.tracking_uri,
                exc,
            )


def record(
    tracker: Tracker | None,
    name: str,
    kind: str,
    *,
    params: Mapping[str, Any] = {},
    metrics: Mapping[str, Any] = {},
    tags: Mapping[str, str] = {},
    files: Sequence[Path] = (),
    parent: str | None = None,
) -> str | None:
    """One finished MLflow run for a piece of work that is not a training run (an optimized variant,
    a tuning study, a monitor check); returns its MLflow run id, or None (tracking off or failed)."""
    if tracker is None:
        return None
    try:
        client = tracker.client()
        all_tags = {"dcloop.kind": kind, **tags}
        if parent is not None:
            all_tags["mlflow.parentRunId"] = parent
        created = client.create_run(tracker.experiment_id(), run_name=name, tags=all_tags)
        run_id = str(created.info.run_id)
        _log_params(client, run_id, params)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, 0) for k, v in _numbers(metrics).items()]
        for chunk in _chunks(batch, 1000):
            client.log_batch(run_id, metrics=list(chunk))
        for path in files:
            if path.is_file():
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FINISHED")
        return run_id
    except Exception as exc:  # MLflow raises many kinds; the work is safe in the store
        log.warning("MLflow: could not record %s %r at %s (%s).", kind, name, tracker.tracking_uri, exc)
        return None


def sync_registered_model(
    tracker: Tracker | None,
    name: str,
    versions: Sequence[tuple[int, Path, Mapping[str, str]]],
    aliases: Mapping[str, int],
) -> None:
    """Mirror one registered model to MLflow's model registry: each version's ONNX file as a run
    artifact with a model version pointing at it (tagged with dcloop's version number), and the
    aliases exactly as dcloop holds them (moved, set, or removed). Safe to call again."""
    if tracker is None:
        return
    try:
        client = tracker.client()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description="Served by dcloop (ONNX Runtime).")
        numbers = {v: _ensure_version(tracker, name, v, onnx, tags) for v, onnx, tags in versions}
        held = dict(client.get_registered_model(name).aliases or {})
        for alias in held.keys() - aliases.keys():
            client.delete_registered_model_alias(name, alias)
        for alias, version in aliases.items():
            if version in numbers and str(held.get(alias)) != numbers[version]:
                client.set_registered_model_alias(name, alias, numbers[version])
    except Exception as exc:  # MLflow raises many kinds; the registry of record is the workspace's
        log.warning("MLflow: could not mirror model %s to %s (%s).", name, tracker.tracking_uri, exc)


def _ensure_version(tracker: Tracker, name: str, version: int, onnx: Path, tags: Mapping[str, str]) -> str:
    client = tracker.client()
    found = _registered_version(client, name, version)
    if found is not None:
        return found
    tags = {**tags, "dcloop.version": str(version)}
    run_id = record(tracker, f"{name}@{version}", "model", tags=tags, files=[onnx])
    if run_id is None:
        raise RuntimeError(f"could not log {onnx}")
    made = client.create_model_version(name, f"runs:/{run_id}/{onnx.name}", run_id=run_id, tags=tags)
    return str(made.version)


def _registered_version(client: Any, name: str, version: int) -> str | None:
    found = client.search_model_versions(f"name = '{name}' and tags.`dcloop.version` = '{version}'")
    return str(found[0].version) if found else None


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    flat = [Param(k, str(v)[:6000]) for k, v in _flatten(params).items()]
    for chunk in _chunks(flat, 100):
        client.log_batch(run_id, params=list(chunk))


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Finite numbers only, nested keys joined with dots (NaN and None are not metrics)."""
    out: dict[str, float] = {}
    for key, value in _flatten(metrics).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
