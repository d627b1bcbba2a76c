"""Mirror a monitor check to MLflow: one run per check with each version's live accuracy, drift
figures and alerts as metrics, and the HTML report as an artifact. A failure only warns."""

from __future__ import annotations

from typing import Any

from dcloop.feedback._monitor import MonitorResult
from dcloop.workspace import Workspace


def mirror_monitor(ws: Workspace, result: MonitorResult) -> str | None:
    """Record ``result`` in MLflow; returns the MLflow run id (None when tracking is off or failed)."""
    from dcloop.train._tracking import record, tracker_for

    metrics: dict[str, Any] = {"alerts": len(result.alerts)}
    for v in result.versions:
        key = v.ref.replace("@", ".v")
        metrics.update(
            {
                f"{key}.predictions": v.predictions,
                f"{key}.labelled": v.labelled,
                f"{key}.accuracy": v.accuracy,
                f"{key}.f1_macro": v.f1_macro,
                f"{key}.mean_confidence": v.mean_confidence,
            }
        )
    for d in result.drift:
        key = d.ref.replace("@", ".v")
        metrics.update({f"{key}.psi.{k}": value for k, value in d.psi.items()})
        if d.embedding:
            metrics.update({f"{key}.embedding.{k}": value for k, value in d.embedding.items()})
    tags = {"dcloop.model": result.model, **{f"alert.{a.name}": a.message[:5000] for a in result.alerts}}
    params = {"since": result.since.isoformat() if result.since else "all"}
    files = [result.report] if result.report else []
    name = f"monitor {result.model} {result.checked_at:%Y-%m-%d %H:%M:%S}"
    return record(tracker_for(ws), name, "monitor", params=params, metrics=metrics, tags=tags, files=files)
