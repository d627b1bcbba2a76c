"""When the controller starts a turn: triggers that fire and policies that hold them back, as pure
functions of what the controller observed (no store, no clock), so every rule is tested alone.

Triggers, in the order they are reported: a person's request, a monitor alert held long enough,
enough new labels, a cron time passed, the interval since the last turn elapsed. Policies: daily
budgets of turns, CPU-hours and energy (binding on everyone), quiet hours and a cooldown after the
last turn (a person's request is not held back by those two: someone asked for this turn now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Observation:
    """What the controller saw at ``now``: the last turn, the feedback since, alerts and requests."""

    now: datetime
    since: datetime  # when the controller began watching (a cron time before it does not count)
    last_start: datetime | None = None  # the newest turn's start, by anyone
    last_end: datetime | None = None  # ... and its end (None while it has not ended)
    new_labels: int = 0  # labels posted since ``last_start`` (all labels when there was no turn)
    alerts: Mapping[str, datetime] = field(default_factory=dict)  # firing alert -> held since
    requests: Sequence[str] = ()  # reasons of the pending manual requests
    turns_today: int = 0  # turns started in the 24 hours before ``now``
    cpu_hours_today: float = 0.0  # CPU time the turns took in those 24 hours (child processes too)
    kwh_today: float = 0.0  # energy the turns took in those 24 hours (measured or estimated)


@dataclass(frozen=True)
class Firing:
    """A trigger that fired: its kind, one line saying why, and the figures behind it."""

    trigger: str  # request, alert, labels, cron, interval
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def fired(
    obs: Observation,
    *,
    min_new_labels: int = 0,
    alert_held_s: float | None = None,
    interval_s: float | None = None,
    cron: str | None = None,
) -> list[Firing]:
    """Every trigger that fires on ``obs``, a person's request first."""
    out = [Firing("request", f"requested: {reason}", {"reason": reason}) for reason in obs.requests[:1]]
    if alert_held_s is not None:
        for name, held_since in sorted(obs.alerts.items(), key=lambda item: item[1]):
            held = (obs.now - held_since).total_seconds()
            if held >= alert_held_s:
                figures = {"alert": name, "held_s": round(held, 1), "needed_s": alert_held_s}
                out.append(
                    Firing("alert", f"alert {name} held {held:.0f} s (>= {alert_held_s:g} s)", figures)
                )
                break
    if min_new_labels > 0 and obs.new_labels >= min_new_labels:
        figures = {"new_labels": obs.new_labels, "needed": min_new_labels}
        out.append(Firing("labels", f"{obs.new_labels} new labels (>= {min_new_labels})", figures))
    if cron is not None:
        due = cron_due(cron, obs.last_start or obs.since, obs.now)
        if due is not None:
            out.append(
                Firing(
                    "cron", f"schedule {cron!r} was due at {due:%Y-%m-%d %H:%M} UTC", {"due": due.isoformat()}
                )
            )
    if interval_s is not None:
        elapsed = None if obs.last_start is None else (obs.now - obs.last_start).total_seconds()
        if elapsed is None or elapsed >= interval_s:
            since = "no turn yet" if elapsed is None else f"{elapsed:.0f} s since the last turn began"
            out.append(Firing("interval", f"interval {interval_s:g} s: {since}", {"elapsed_s": elapsed}))
    return out


def held_back(
    obs: Observation,
    firing: Firing,
    *,
    cooldown_s: float = 0.0,
    max_turns_per_day: int | None = None,
    max_cpu_hours_per_day: float | None = None,
    max_kwh_per_day: float | None = None,
    quiet_hours: str | None = None,
) -> str | None:
    """Why the policies keep ``firing`` from starting a turn now (one line), or None when it may start."""
    if max_turns_per_day is not None and obs.turns_today >= max_turns_per_day:
        return f"budget: {obs.turns_today} turns in the last 24 h (loop.policy.max_turns_per_day {max_turns_per_day})"
    if max_cpu_hours_per_day is not None and obs.cpu_hours_today >= max_cpu_hours_per_day:
        return (
            f"budget: turns took {obs.cpu_hours_today:.2f} CPU-hours in the last 24 h "
            f"(loop.policy.max_cpu_hours_per_day {max_cpu_hours_per_day:g})"
        )
    if max_kwh_per_day is not None and obs.kwh_today >= max_kwh_per_day:
        return (
            f"budget: turns took {obs.kwh_today:.4g} kWh in the last 24 h "
            f"(loop.policy.max_kwh_per_day {max_kwh_per_day:g})"
        )
    if firing.trigger == "request":
        return None
    if obs.last_start is not None and obs.last_end is None:
        return "a turn is still running"
    if quiet_hours is not None and in_quiet_hours(obs.now, quiet_hours):
        return f"quiet hours {quiet_hours} UTC"
    if obs.last_end is not None:
        waited = (obs.now - obs.last_end).total_seconds()
        if waited < cooldown_s:
            return f"cooldown: {waited:.0f} s of {cooldown_s:g} s since the last turn ended"
    return None


def in_quiet_hours(now: datetime, spec: str) -> bool:
    """Whether ``now`` falls in 'HH:MM-HH:MM' (UTC; a window that ends before it starts spans midnight)."""
    start, end = (_minute(part) for part in spec.split("-"))
    minute = now.hour * 60 + now.minute
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end


def cron_due(expression: str, after: datetime, now: datetime) -> datetime | None:
    """The first time ``expression`` (UTC) names after ``after``, when that is not later than ``now``."""
    from cronsim import CronSim

    due: datetime = next(CronSim(expression, after))  # strictly after ``after``
    return due if due <= now else None


def _minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)
