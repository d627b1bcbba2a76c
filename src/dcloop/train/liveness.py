"""Which process owns a running run, and failing runs whose owner died without closing them.

A run is marked ``running`` by the process that trains it and closed by the same process (finished,
failed or stopped). A process killed by a signal (SIGKILL, the OOM killer, a native crash in a
kernel) never closes it, so the run would stay ``running`` forever. Each run records its owner
(host, pid and the process's start time, which tells a reused pid apart); listing, showing or
resuming runs fails those whose owner on this host is gone, with the reason. A run owned by another
host is left alone: its process cannot be seen from here.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any

from dcloop.store import RunRecord, Store
from dcloop.store import runs as store_runs

log = logging.getLogger(__name__)
OWNER = "owner"  # the key of the owner in a run's lineage


def current_owner() -> dict[str, Any]:
    """This process as a run owner: host, pid and start time (seconds since the epoch)."""
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def owner_gone(owner: dict[str, Any] | None) -> bool:
    """Whether ``owner``'s process is known to have ended: same host, and its pid is free or reused."""
    import psutil

    if not owner or owner.get("host") != socket.gethostname():
        return False
    try:
        started = psutil.Process(int(owner["pid"])).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # exists, but not ours to inspect: assume alive
        return False
    return abs(started - float(owner["started"])) > 1.0


def dead_reason(run: RunRecord) -> str:
    owner = run.lineage[OWNER]
    return (
        f"its process (pid {owner['pid']} on {owner['host']}) ended without closing the run: killed, "
        "or a native crash in training (a crashing CPU kernel is avoided with `train.threads: 1` or "
        f"`train.channels_last: false`); continue it with `dcloop train --resume {run.id[:12]}`"
    )


def fail_dead_runs(store: Store, runs: Iterable[RunRecord]) -> list[RunRecord]:
    """``runs`` with every ``running`` one whose owner is gone marked failed (with the reason) in the store."""
    checked = []
    for run in runs:
        if run.status == "running" and owner_gone(run.lineage.get(OWNER)):
            reason = dead_reason(run)
            log.warning("run %s failed: %s", run.id[:12], reason)
            run = store_runs.update_run(
                store, run.id, status="failed", metrics={**run.metrics, "error": reason}
            )
        checked.append(run)
    return checked
