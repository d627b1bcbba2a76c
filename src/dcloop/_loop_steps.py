"""The steps of a loop turn, in the order ``loop.STEPS`` runs them.

Each takes (workspace, turn record, outputs of the steps before, traffic hook, in-process extras)
and returns (status, outputs); outputs are plain JSON values (ids, refs, numbers) recorded with the step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dcloop.errors import DcloopError
from dcloop.workspace import Workspace

from dcloop.store import datasets as store_datasets
from dcloop.store import turns as q

log = logging.getLogger(__name__)
Traffic = Callable[[Workspace, str], dict[str, Any]]
"""Called by the feedback step with the served model ref; sends traffic and labels (the demo does)."""

# -- the steps: (ws, turn, outputs so far, traffic, extra) -> (status, outputs) ----------------------

StepOut = tuple[str, dict[str, Any]]


def _prepare(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    """Prepare the source again, then train on its newest descendant (feedback folded in), if any."""
    from dcloop.data import import_source, prepare_dataset

    cfg = ws.config.loop
    record = import_source(ws, cfg.source, classes=cfg.classes) if cfg.source else prepare_dataset(ws)
    newest = _newest_descendant(ws, record.id)
    return "finished", {"dataset": newest.id, "dataset_name": newest.name, "source_version": record.id}


def _newest_descendant(ws: Workspace, version_id: str) -> Any:
    versions = store_datasets.list_datasets(ws.store)
    parents = {v.id: v.parent_id for v in versions}
    for candidate in reversed(versions):  # newest first
        node: str | None = candidate.id
        while node is not None:
            if node == version_id:
                return candidate
            node = parents.get(node)
    return store_datasets.get_dataset(ws.store, version_id)


def _train(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    """Train the workspace recipe; an interrupted run of this turn resumes from its checkpoint."""
    from dcloop.store.runs import unfinished_runs
    from dcloop.train.checkpoint import latest_checkpoint

    from dcloop.train import train

    run_name = f"loop-turn-{turn.number}"
    interrupted = [
        r
        for r in unfinished_runs(ws.store, kind="train")
        if r.name == run_name and latest_checkpoint(Path(r.path) / "checkpoint") is not None
    ]
    if interrupted:
        log.info("resuming training run %s", interrupted[0].id[:12])
        run = train(ws, ws.config.train, resume=interrupted[0].id)
    else:
        run = train(ws, ws.config.train, out["dataset"], kind="train", name=run_name)
    return "finished", {"run": run.id, "run_accuracy": run.metrics.get("accuracy")}


def _optimize(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    from dcloop.optimize import optimize

    result = optimize(ws, out["run"], methods=ws.config.loop.optimize_methods)
    chosen = result.recommended
    return "finished", {
        "optimization": result.id,
        "variant": chosen.id,
        "variant_method": chosen.method,
        "optimization_report": str(result.report_path),
    }


def _register(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    """Register the recommended variant as the challenger (once: a rerun finds the version made)."""
    from dcloop.deploy.registry import list_model_versions, register_model_version
    from dcloop.store import registry as rq

    name = ws.config.loop.model or out["dataset_name"]
    known = name in rq.model_names(ws.store)
    same = [v for v, _ in list_model_versions(ws, name) if v.variant_id == out["variant"]] if known else []
    version = same[-1] if same else register_model_version(ws, out["variant"], name=name, alias="challenger")
    return "finished", {"model": name, "registered": version.ref}


def _gate(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    from dcloop.deploy import GateRefused, promote
    from dcloop.deploy.registry import get_model_version

    name, version = out["model"], int(out["registered"].rpartition("@")[2])
    try:
        promotion = promote(ws, name, version=version, reason=f"loop turn {turn.number}")
        passed, reasons = True, []
        why = promotion.move.reason
    except GateRefused as refused:
        passed, reasons, why = False, list(refused.decision.reasons), "gate refused"
    champion = get_model_version(ws, f"{name}@champion").ref
    return "finished", {
        "gate_passed": passed,
        "gate_reasons": reasons,
        "gate_note": why,
        "champion": champion,
    }


def _deploy(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    """Check the champion loads and is ready in the real server app (servers follow the alias)."""
    from dcloop._demo_traffic import in_process_client
    from dcloop.deploy.server import create_app

    ref = f"{out['model']}@champion"
    with in_process_client(create_app(ws, ref)) as client:
        ready = client.get(f"/v2/models/{out['model']}/ready")
    if ready.status_code != 200:
        raise DcloopError(
            f"The server cannot serve {ref}: /v2/models/{out['model']}/ready answered {ready.status_code}."
        )
    return "finished", {"served": out["champion"]}


def _feedback(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    """Count the predictions and labels gathered so far (``traffic`` first sends some, in the demo)."""
    from dcloop.feedback.store import prediction_stats

    sent = traffic(ws, f"{out['model']}@champion") if traffic is not None else {}
    stats = prediction_stats(ws.store, model_name=out["model"])
    return "finished", {"predictions": stats["predictions"], "labelled": stats["labelled"], "traffic": sent}


def _monitor(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    from dcloop.feedback.monitor import monitor

    if not out.get("predictions"):
        return "skipped", {"monitor_note": "no predictions yet"}
    result = monitor(ws, out["model"], report=ws.reports_dir / f"loop-turn-{turn.number}-monitor.html")
    extra["monitor"] = result
    return "finished", {"alerts": [a.message for a in result.alerts], "monitor_report": str(result.report)}


def _retrain(
    ws: Workspace, turn: q.TurnRecord, out: dict[str, Any], traffic: Traffic | None, extra: dict
) -> StepOut:
    """Retrain on labelled feedback when there is enough of it; the gate decides on promotion."""
    from dcloop.feedback.retrain import NothingToRetrain, retrain

    cfg = ws.config.loop
    try:
        result = retrain(ws, out["model"], warm_start=cfg.warm_start)
    except NothingToRetrain as exc:
        return "skipped", {"retrain_note": str(exc)}
    extra["retrain"] = result
    return "finished", {
        "challenger": result.challenger,
        "retrain_promoted": result.promoted,
        "retrain_reasons": result.reasons,
        "retrain_dataset": result.dataset,
        "retrain_run": result.run_id,
        "champion_after": result.challenger if result.promoted else result.champion,
    }


RUNNERS: dict[str, Callable[..., StepOut]] = {
    "prepare": _prepare,
    "train": _train,
    "optimize": _optimize,
    "register": _register,
    "gate": _gate,
    "deploy": _deploy,
    "feedback": _feedback,
    "monitor": _monitor,
    "retrain": _retrain,
}
