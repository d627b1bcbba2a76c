"""A challenger from a recipe and a data set version: train -> optimize -> register -> gate.

`challenge` runs the four in order (``dcloop retrain`` does); a loop turn runs the same four functions
as its own steps, so it can record each and resume between them. Every part can be run again after
an interruption: training resumes its interrupted run, registering finds the version already made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcloop.errors import NotFoundError

if TYPE_CHECKING:
    import numpy as np

    from dcloop.config import TrainConfig
    from dcloop.deploy import ModelVersion
    from dcloop.optimize import OptimizationResult
    from dcloop.store import RunRecord
    from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """What the promotion gate decided on a version, and which version is champion after it."""

    passed: bool
    reasons: list[str]  # why the gate refused (empty when it passed)
    metrics: dict[str, Any]  # the numbers the gate compared (empty for a first champion)
    note: str  # the alias move's reason, or "gate refused"
    champion: str  # name@version of the champion after the decision


@dataclass(frozen=True)
class Challenge:
    """The run, optimization and registered version of one challenger, and the gate's verdict."""

    run: RunRecord
    optimization: OptimizationResult
    version: ModelVersion
    verdict: Verdict


def challenge(
    ws: Workspace,
    recipe: TrainConfig,
    dataset: str,
    *,
    model: str,
    run_name: str,
    kind: str = "train",
    init_from: str | None = None,
    reason: str | None = None,
    train_index: np.ndarray | None = None,
) -> Challenge:
    """Train ``recipe`` on ``dataset`` (its train split, or ``train_index``), optimize it, register it
    as ``model``'s challenger, gate it."""
    run = train_challenger(
        ws, recipe, dataset, name=run_name, kind=kind, init_from=init_from, train_index=train_index
    )
    optimization = optimize_challenger(ws, run.id)
    version = register_challenger(ws, model, optimization.recommended.id)
    verdict = gate_challenger(ws, model, version.version, reason)
    return Challenge(run, optimization, version, verdict)


def train_challenger(
    ws: Workspace,
    recipe: TrainConfig,
    dataset: str,
    *,
    name: str,
    kind: str = "train",
    init_from: str | None = None,
    train_index: np.ndarray | None = None,
) -> RunRecord:
    """Train a run called ``name``; an interrupted run of that name on ``dataset`` resumes instead."""
    from dcloop.store.runs import unfinished_runs
    from dcloop.train import train
    from dcloop.train._checkpoint import latest_checkpoint

    for run in unfinished_runs(ws.store, kind=kind):
        if (
            run.name == name
            and run.dataset_id == dataset
            and latest_checkpoint(Path(run.path) / "checkpoint")
        ):
            log.info("resuming training run %s", run.id[:12])
            return train(ws, recipe, resume=run.id)
    return train(ws, recipe, dataset, kind=kind, name=name, init_from=init_from, train_index=train_index)


def optimize_challenger(ws: Workspace, run_id: str) -> OptimizationResult:
    """Optimize a run with `loop.optimize_methods`, so loop and retrain models serve alike."""
    from dcloop.optimize import optimize

    return optimize(ws, run_id, methods=ws.config.loop.optimize_methods)


def register_challenger(ws: Workspace, model: str, variant_id: str) -> ModelVersion:
    """Register a variant as ``model``'s challenger, once: a variant registered before is reused."""
    from dcloop.deploy import list_model_versions, register_model_version

    try:
        known = [v for v, _ in list_model_versions(ws, model) if v.variant_id == variant_id]
    except NotFoundError:  # the model's first version
        known = []
    if known:
        return known[-1]
    version = register_model_version(ws, variant_id, name=model, alias="challenger")
    log.info("registered challenger %s", version.ref)
    return version


def gate_challenger(ws: Workspace, model: str, version: int, reason: str | None = None) -> Verdict:
    """Promote ``model@version`` to champion through the gate; a refusal is a verdict, not an error."""
    from dcloop.deploy import GateRefused, get_model_version, promote

    try:
        promotion = promote(ws, model, version=version, reason=reason)
    except GateRefused as refused:
        decision = refused.decision
        passed, reasons, metrics, note = False, list(decision.reasons), dict(decision.metrics), "gate refused"
    else:
        metrics = dict(promotion.decision.metrics) if promotion.decision is not None else {}
        passed, reasons, note = True, [], promotion.move.reason
    champion = get_model_version(ws, f"{model}@champion").ref
    log.info("gate %s: champion is %s", "passed" if passed else "refused", champion)
    return Verdict(passed, reasons, metrics, note, champion)
