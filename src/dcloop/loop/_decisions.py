"""What the controller records: one decision per trigger that started, resumed or held back a turn,
and per turn outcome with its cost (wall and CPU seconds, child processes included, and energy)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from dcloop.loop._triggers import Firing
from dcloop.meter import JobMeter
from dcloop.store import controller as q
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


def turn_figures(outputs: dict[str, Any]) -> dict[str, Any]:
    keys = ("registered", "gate_passed", "champion", "challenger", "retrain_promoted", "champion_after")
    return {k: outputs[k] for k in keys if k in outputs} | {
        "reasons": [*outputs.get("gate_reasons", []), *outputs.get("retrain_reasons", [])]
    }


def turn_reason(outputs: dict[str, Any]) -> str:
    """What the turn did, in one line: the retrain gate's decision when it retrained."""
    if outputs.get("challenger"):
        verdict = "promoted" if outputs.get("retrain_promoted") else "refused"
        why = "; ".join(outputs.get("retrain_reasons") or [])
        return f"challenger {outputs['challenger']} {verdict}" + (f": {why}" if why else "")
    note = outputs.get("retrain_note")
    return (
        f"champion {outputs.get('champion')}; no retrain: {note}"
        if note
        else f"champion {outputs.get('champion')}"
    )


def cost_figures(meter: JobMeter) -> dict[str, Any]:
    """A turn's cost as recorded with its decision: what the daily budgets add up."""
    cost = meter.result()
    return {
        "wall_s": round(cost.wall_s, 2),
        "cpu_s": round(cost.cpu_s, 2),
        "energy_kwh": round(cost.energy_kwh, 9),
        "energy_source": cost.energy_source,
    }


def decide(
    ws: Workspace,
    model: str,
    owner: str,
    at: datetime,
    firing: Firing,
    outcome: str,
    reason: str,
    extra: dict[str, Any] | None = None,
    turn_id: str | None = None,
) -> q.Decision:
    figures = {**firing.figures, **(extra or {})}
    log.info("%s: %s (%s)", outcome, reason, firing.trigger)
    return q.record_decision(
        ws.store,
        at=at,
        model=model,
        trigger=firing.trigger,
        outcome=outcome,
        reason=reason,
        figures=figures,
        owner=owner,
        turn_id=turn_id,
    )
