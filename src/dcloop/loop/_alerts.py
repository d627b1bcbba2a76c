"""What the controller watches between turns: monitor alerts about the champion, held since their
first sighting (recorded, so a restarted controller keeps counting), and the champion's live accuracy
against the version it replaced (``loop.auto_rollback``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from dcloop.errors import NotFoundError
from dcloop.loop._decisions import decide
from dcloop.loop._lease import take_lease
from dcloop.loop._triggers import Firing
from dcloop.store import controller as q
from dcloop.workspace import Workspace


@dataclass
class Watching:
    """What one controller remembers between looks: alerts and since when they hold, what it last said."""

    since: datetime
    alerts: dict[str, datetime] = field(default_factory=dict)
    mark: tuple[int, int] | None = None  # (predictions, labels) when the monitor last ran
    rollback_mark: tuple[int, int] | None = None  # ... when auto-rollback last found nothing to do
    said: str | None = None  # the last held-back reason recorded, so it is recorded once


def watch_alerts(ws: Workspace, model: str, owner: str, state: Watching, now: datetime) -> list[q.Decision]:
    """Run the monitor when predictions or labels moved; record alerts that appear and clear."""
    mark = q.prediction_mark(ws.store, model)
    if mark == state.mark:
        return []
    state.mark = mark
    firing = _champion_alerts(ws, model)
    decisions = []
    for name, message in firing.items():
        if name not in state.alerts:
            state.alerts[name] = now
            decisions.append(
                decide(
                    ws, model, owner, now, Firing("alert", message, {"alert": name}), "alert_seen", message
                )
            )
    for name in [n for n in state.alerts if n not in firing]:
        del state.alerts[name]
        cleared = Firing("alert", f"alert {name} cleared", {"alert": name})
        decisions.append(decide(ws, model, owner, now, cleared, "alert_cleared", cleared.reason))
    return decisions


def _champion_alerts(ws: Workspace, model: str) -> dict[str, str]:
    """The alerts about the serving champion (an older version's record is no reason for a turn)."""
    from dcloop.deploy import get_model_version
    from dcloop.feedback import monitor

    try:
        champion = get_model_version(ws, f"{model}@champion").ref
        result = monitor(ws, model, export_alerts=False)
    except NotFoundError:
        return {}
    return {a.name: a.message for a in result.alerts if a.subject == champion}


def held_alerts(ws: Workspace, model: str) -> dict[str, datetime]:
    """Alerts seen and not cleared since the newest turn began or was resumed, from the decisions
    recorded (a turn starting clears them, as a running controller does)."""
    newest = q.newest_turn(ws.store)
    held: dict[str, datetime] = {}
    for d in q.list_decisions(ws.store, model, limit=500):
        if newest is not None and d.at < newest.started_at:
            continue
        if d.outcome in ("started", "resumed"):
            held.clear()
        elif d.outcome == "alert_seen":
            held.setdefault(d.figures["alert"], d.at)
        elif d.outcome == "alert_cleared":
            held.pop(d.figures["alert"], None)
    return held


def auto_rollback(ws: Workspace, model: str, owner: str, state: Watching, now: datetime) -> list[q.Decision]:
    """Move the champion back when its live accuracy fell significantly below its predecessor's."""
    from dcloop.deploy import rollback
    from dcloop.loop._rollback import check_rollback

    cfg = ws.config.loop.auto_rollback
    mark = q.prediction_mark(ws.store, model)
    if mark == state.rollback_mark:
        return []
    try:
        check = check_rollback(ws, model, cfg.margin, cfg.min_labels)
    except NotFoundError:  # nothing registered yet
        check = None
    if check is None or check.p_value >= cfg.p_value:
        state.rollback_mark = mark
        return []
    if take_lease(ws, model, owner, now).owner != owner:
        return []  # a turn is running: look again next time
    try:
        move = rollback(
            ws, model, reason=f"auto rollback: {check.reason}", actor=f"dcloop loop --watch ({owner})"
        )
    finally:
        q.release_lease(ws.store, model, owner)
    firing = Firing("rollback", check.reason, dataclasses.asdict(check))
    reason = f"champion back to {model}@{move.to_version}: {check.reason}"
    return [decide(ws, model, owner, now, firing, "rolled_back", reason)]
