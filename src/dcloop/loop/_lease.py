"""The lease on a model's loop turns: at most one turn of a model runs at a time, whoever starts it
(a controller, another controller on another machine sharing a PostgreSQL store, or a person running
``dcloop loop``). The lease lives in the store and expires unless renewed, so a holder that died
gives it up; on this host a holder whose process is gone is taken over at once. ``turn_lease``
holds it while a person runs ``dcloop loop``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from dcloop.errors import DcloopError, NotFoundError
from dcloop.loop._decisions import cost_figures, decide
from dcloop.loop._triggers import Firing
from dcloop.meter import meter_for
from dcloop.store import controller as q
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_owner() -> str:
    """Who holds a lease: host, process and a token (two controllers in one process differ too)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def take_lease(ws: Workspace, model: str, owner: str, now: datetime) -> q.Lease:
    """Acquire the model's lease; a holder on this host whose process is gone (``kill -9``) is taken
    over at once instead of after its lease expires. The caller holds it if the owner is ``owner``."""
    ttl = ws.config.loop.policy.lease_s
    lease = q.acquire_lease(ws.store, model, owner, ttl, now)
    if (
        lease.owner != owner
        and _dead(lease.owner)
        and q.take_over_lease(ws.store, model, lease.owner, owner, ttl, now)
    ):
        log.info("took over the loop lease of %s from %s (its process is gone)", model, lease.owner)
        return q.Lease(model, owner, now, now + timedelta(seconds=ttl))
    return lease


def _dead(owner: str) -> bool:
    import psutil

    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


def lease_name(ws: Workspace) -> str:
    """The model whose turns the lease guards: ``loop.model``, else the only registered model."""
    from dcloop.deploy._registry import resolve_model_name

    if ws.config.loop.model:
        return ws.config.loop.model
    try:
        return resolve_model_name(ws, None)
    except NotFoundError:
        return ws.config.name  # nothing registered yet: the workspace's one model-to-be


def renew_while_running(ws: Workspace, model: str, owner: str, clock: Clock) -> threading.Event:
    """Renew the lease every third of its length from a daemon thread; set the event to stop."""
    done = threading.Event()
    ttl = ws.config.loop.policy.lease_s

    def renew() -> None:
        while not done.wait(ttl / 3):
            if not q.renew_lease(ws.store, model, owner, ttl, clock()):
                log.error("lost the loop lease of %s (renewal came after it expired)", model)

    threading.Thread(target=renew, name="dcloop-lease", daemon=True).start()
    return done


@contextmanager
def turn_lease(ws: Workspace, clock: Clock = utc_now) -> Iterator[str]:
    """Hold the model's lease while a person runs a turn (``dcloop loop``), so no controller starts one."""
    model, owner = lease_name(ws), new_owner()
    lease = take_lease(ws, model, owner, clock())
    if lease.owner != owner:
        raise DcloopError(
            f"A loop turn of {model!r} is running (lease held by {lease.owner} until "
            f"{lease.expires_at:%Y-%m-%d %H:%M:%S} UTC); wait for it, or stop that controller."
        )
    by_hand = Firing("manual", "dcloop loop run by hand")
    decide(ws, model, owner, clock(), by_hand, "started", by_hand.reason)
    renewing = renew_while_running(ws, model, owner, clock)
    meter = meter_for(ws).__enter__()  # CPU time counts child processes; energy from counters
    try:
        yield owner
    finally:
        meter.__exit__(None, None, None)
        renewing.set()
        q.release_lease(ws.store, model, owner)
        turn = q.newest_turn(ws.store)
        if turn is not None:  # finished, paused (--until) or failed: the turn's record says which
            reason = f"turn {turn.number} {turn.status}"
            decide(ws, model, owner, clock(), by_hand, turn.status, reason, cost_figures(meter), turn.id)
