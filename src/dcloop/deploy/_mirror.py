"""Mirror the workspace's model registry to MLflow's, so a team sees served models and their aliases
in the MLflow UI. The workspace registry stays the one the server reads; a failure only warns."""

from __future__ import annotations

from pathlib import Path

from dcloop.store import registry as q
from dcloop.workspace import Workspace


def mirror_registry(ws: Workspace, name: str) -> None:
    """Bring MLflow's registered model ``name`` in line with the workspace: every version (its ONNX
    file), and each alias on the version it points at. Does nothing when `tracking.mlflow` is off."""
    from dcloop.train._tracking import sync_registered_model, tracker_for

    tracker = tracker_for(ws)
    if tracker is None:
        return
    versions = [
        (v.version, Path(v.path), _tags(v.run_id, v.dataset_id, v.method, v.sha256))
        for v in q.list_versions(ws.store, name)
    ]
    sync_registered_model(tracker, name, versions, q.aliases(ws.store, name))


def _tags(run_id: str | None, dataset_id: str | None, method: str | None, sha256: str) -> dict[str, str]:
    tags = {"dcloop.sha256": sha256, "dcloop.method": method or "onnx"}
    if run_id:
        tags["dcloop.run_id"] = run_id
    if dataset_id:
        tags["dcloop.dataset_id"] = dataset_id
    return tags
