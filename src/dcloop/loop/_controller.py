"""`watch`: the loop controller. It looks at the workspace store every ``loop.policy.poll_s`` seconds,
evaluates ``loop.triggers`` against ``loop.policy`` (``dcloop.loop._triggers``), and runs the same turn
``dcloop loop`` runs, under the model's lease, so no two turns of one model ever run at once.

Every decision is recorded in the store (``dcloop loop history``): a trigger that started or resumed a
turn with its figures, what the turn did (gate, promotion, cost), and a trigger held back with its
reason (cooldown, budget, quiet hours, lease held). A held-back trigger is recorded once per reason,
not once per look. SIGTERM stops it after the step in progress; the turn is left for the next start to
resume, as a turn killed outright is once its lease expires.

Beside it: the lease (``lease``), what is watched between turns (``_alerts``: alerts, auto-rollback)
and what is recorded (``_decisions``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from dcloop._signals import signal_handlers
from dcloop.errors import DcloopError, StoreError
from dcloop.loop._alerts import Watching, auto_rollback, held_alerts, watch_alerts
from dcloop.loop._decisions import cost_figures, decide, turn_figures, turn_reason
from dcloop.loop._lease import (
    Clock,
    lease_name,
    new_owner,
    renew_while_running,
    take_lease,
    utc_now,
)
from dcloop.loop._steps import Traffic
from dcloop.loop._triggers import Firing, Observation, fired, held_back
from dcloop.meter import meter_for
from dcloop.store import controller as q
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """Raised between steps after SIGTERM: the turn stays open for the next start to resume."""


def watch(
    ws: Workspace,
    *,
    polls: int | None = None,
    clock: Clock = utc_now,
    wait: Callable[[float], bool] | None = None,
    stop: threading.Event | None = None,
    owner: str | None = None,
    traffic: Traffic | None = None,
    on_decision: Callable[[q.Decision], None] | None = None,
) -> list[q.Decision]:
    """Watch the store and run turns when triggers fire, until SIGTERM/SIGINT, ``stop`` is set, or
    ``polls`` looks are done; returns the decisions this call recorded (``on_decision`` sees each
    after the look that made it).

    ``clock`` gives the time decisions are made at, ``wait(seconds)`` waits between looks and returns
    True to stop (default: ``stop.wait``); tests inject both instead of sleeping.
    """
    stop = stop or threading.Event()
    wait = wait or stop.wait
    owner = owner or new_owner()
    model = lease_name(ws)
    state = Watching(since=clock(), alerts=held_alerts(ws, model))
    decisions: list[q.Decision] = []
    with _stop_on_signals(stop):
        looks = 0
        while not stop.is_set():
            try:
                made = look(ws, model, owner, state, clock, stop, traffic)
            except StoreError as exc:  # the database is away for a moment: look again next time
                log.error("loop controller: %s", exc)
                made = []
            decisions += made
            if on_decision is not None:
                for decision in made:
                    on_decision(decision)
            looks += 1
            if (polls is not None and looks >= polls) or wait(ws.config.loop.policy.poll_s):
                break
    return decisions


def look(
    ws: Workspace,
    model: str,
    owner: str,
    state: Watching,
    clock: Clock,
    stop: threading.Event,
    traffic: Traffic | None = None,
) -> list[q.Decision]:
    """One look at the store: resume an interrupted turn, or evaluate triggers and maybe run a turn."""
    cfg = ws.config.loop
    now = clock()
    newest = q.newest_turn(ws.store)
    decisions = watch_alerts(ws, model, owner, state, now) if cfg.triggers.alert_held_s is not None else []
    if cfg.auto_rollback.enabled and (newest is None or newest.status != "running"):
        decisions += auto_rollback(ws, model, owner, state, now)
    if newest is not None and newest.status == "running":
        lease = take_lease(ws, model, owner, now)
        if lease.owner == owner:  # a running turn nobody holds: its controller died or was stopped
            firing = Firing("resume", f"turn {newest.number} was interrupted; resuming it", {})
            return [*decisions, *_run(ws, model, owner, firing, True, clock, stop, traffic)]
    requests = q.pending_requests(ws.store, model)
    obs = Observation(
        now=now,
        since=state.since,
        last_start=newest.started_at if newest else None,
        last_end=newest.ended_at if newest else None,
        new_labels=q.labels_since(ws.store, model, newest.ended_at if newest else None),
        alerts=state.alerts,
        requests=[r.reason for r in requests],
        turns_today=q.turns_started_since(ws.store, now - timedelta(days=1)),
        cpu_hours_today=q.cpu_hours_since(ws.store, model, now - timedelta(days=1)),
        kwh_today=q.energy_kwh_since(ws.store, model, now - timedelta(days=1)),
    )
    firings = fired(obs, **cfg.triggers.model_dump())
    if not firings:
        state.said = None
        return decisions
    firing = firings[0]
    reason = held_back(obs, firing, **cfg.policy.model_dump(exclude={"poll_s", "lease_s"}))
    if reason is None:
        lease = take_lease(ws, model, owner, now)
        if lease.owner != owner:
            reason = f"lease held by {lease.owner} until {lease.expires_at:%H:%M:%S} UTC"
    if reason is not None:
        key = f"{firing.trigger}/{reason.split(':')[0]}"
        if key == state.said:
            return decisions
        state.said = key
        return [*decisions, decide(ws, model, owner, now, firing, "not_started", f"not started: {reason}")]
    state.said = None
    resume = newest is not None and newest.status != "finished"
    state.alerts.clear()  # an alert must hold again after this turn before it starts another
    try:
        return [*decisions, *_run(ws, model, owner, firing, resume, clock, stop, traffic)]
    finally:  # pending while the turn runs, so another controller says why it did not start one
        if requests:
            q.mark_handled(ws.store, [r.id for r in requests], clock())


def _run(
    ws: Workspace,
    model: str,
    owner: str,
    firing: Firing,
    resume: bool,
    clock: Clock,
    stop: threading.Event,
    traffic: Traffic | None,
) -> list[q.Decision]:
    """Run (or resume) a turn under the lease, renewed while it runs; record what it did."""
    from dcloop.loop._turn import run_loop

    outcome = "resumed" if resume else "started"
    first = decide(ws, model, owner, clock(), firing, outcome, firing.reason)
    renewing = renew_while_running(ws, model, owner, clock)
    meter = meter_for(ws).__enter__()  # CPU time counts child processes; energy from counters

    def between_steps(step: Any) -> None:
        if stop.is_set():
            raise _Stopped(step.name)

    try:
        turn = run_loop(ws, resume=resume, traffic=traffic, on_step=between_steps)
    except _Stopped as exc:
        reason = f"stopped after {exc}; the next start resumes the turn"
        return [first, decide(ws, model, owner, clock(), firing, "stopped", reason, cost_figures(meter))]
    except Exception as exc:  # a failed turn is recorded and resumed later; the controller goes on
        log.error("loop turn failed: %s", exc, exc_info=not isinstance(exc, DcloopError))
        figures = cost_figures(meter)
        return [
            first,
            decide(ws, model, owner, clock(), firing, "failed", f"{type(exc).__name__}: {exc}", figures),
        ]
    finally:
        meter.__exit__(None, None, None)
        renewing.set()
        q.release_lease(ws.store, model, owner)
    figures = {**cost_figures(meter), **turn_figures(turn.outputs), "turn": turn.number}
    last = decide(ws, model, owner, clock(), firing, turn.status, turn_reason(turn.outputs), figures, turn.id)
    return [first, last]


def _stop_on_signals(stop: threading.Event) -> AbstractContextManager[None]:
    """SIGTERM and SIGINT set ``stop`` for the block (main thread only), then the old handlers are back."""

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the step in progress", signum)
        stop.set()

    return signal_handlers(("SIGTERM", "SIGINT"), handler)


def request_turn(ws: Workspace, reason: str, clock: Clock = utc_now) -> q.TurnRequest:
    """Ask the controller for a turn (``dcloop loop --request "reason"``); it runs at its next look."""
    if not reason.strip():
        raise DcloopError(
            '--request needs a reason, e.g. dcloop loop --request "labels from the night shift".'
        )
    return q.add_request(ws.store, lease_name(ws), reason.strip(), clock())


def history(ws: Workspace, limit: int | None = None) -> list[q.Decision]:
    """The controller's decisions about this workspace's model, oldest first (the newest ``limit``)."""
    return q.list_decisions(ws.store, lease_name(ws), limit=limit)
