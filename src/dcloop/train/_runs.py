"""Run listings and details as plain dicts, for `dcloop runs list/show` and scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcloop.store import RunRecord
from dcloop.store import runs as store_runs
from dcloop.train._liveness import fail_dead_runs
from dcloop.workspace import Workspace


def run_summary(run: RunRecord) -> dict[str, Any]:
    """The headline of a run: identity, status, test metrics, speed and where its report is."""
    metrics = run.metrics
    report = Path(run.path) / "report.html"
    return {
        "run": run.id,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "model": run.model,
        "dataset": run.dataset_id,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "accuracy": metrics.get("accuracy"),
        "precision_macro": metrics.get("precision_macro"),
        "recall_macro": metrics.get("recall_macro"),
        "f1_macro": metrics.get("f1_macro"),
        "roc_auc": metrics.get("roc_auc"),
        "best_epoch": metrics.get("best_epoch"),
        "epochs_run": metrics.get("epochs_run"),
        "images_per_s": metrics.get("images_per_s"),
        "wall_s": metrics.get("cost", {}).get("wall_s"),
        "error": metrics.get("error"),
        "report": str(report) if report.is_file() else None,
        "path": run.path,
    }


def time_spent(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """How a run with a time budget or an accuracy target spent its time, as field -> value for a
    table: what stopped it, the wall seconds by phase, and when (epoch, seconds, joules) validation
    first met the target. None for a run that had neither."""
    spent = metrics.get("spent")
    if not spent or (spent.get("budget_s") is None and spent.get("target_accuracy") is None):
        return None
    rows: dict[str, Any] = {"stopped by": spent["stopped_by"]}
    if spent.get("budget_s") is not None:
        rows["budget s"] = spent["budget_s"]
    rows["elapsed s"] = round(spent["elapsed_s"], 2)
    for phase in ("train", "validate", "checkpoint", "compile"):
        if spent.get(f"{phase}_s"):
            rows[f"{phase} s"] = round(spent[f"{phase}_s"], 2)
    if spent.get("target_accuracy") is not None:
        rows["target val accuracy"] = spent["target_accuracy"]
        reached = spent.get("to_target")
        if not reached:
            rows["target reached"] = "no"
        else:
            where = f"epoch {reached['epoch']}" + (f", step {reached['step']}" if "step" in reached else "")
            rows["target reached"] = (
                f"{where}, {reached['s']:.1f} s, val accuracy {reached['val_accuracy']:.4f}"
            )
            if "energy_j" in reached:
                rows["energy to target J"] = f"{reached['energy_j']:.0f} ({reached['energy_source']})"
    return rows


def list_runs(workspace: Workspace, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
    """Summaries of the newest runs, newest first."""
    runs = fail_dead_runs(workspace.store, store_runs.recent_runs(workspace.store, limit=limit, kind=kind))
    return [run_summary(r) for r in runs]


def show_run(workspace: Workspace, ref: str) -> dict[str, Any]:
    """Everything recorded about one run: summary, config, lineage, all metrics, per-epoch metrics."""
    run = fail_dead_runs(workspace.store, [store_runs.get_run(workspace.store, ref)])[0]
    epochs = store_runs.list_epochs(workspace.store, run.id)
    return {
        **run_summary(run),
        "parent_run_id": run.parent_run_id,
        "config": run.config,
        "lineage": run.lineage,
        "metrics": run.metrics,
        "epochs": [{"epoch": e.epoch, **e.metrics} for e in epochs],
    }
