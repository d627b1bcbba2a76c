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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dcloop.store import RunRecord, Store
from dcloop.store import runs as store_runs

log = logging.getLogger(__name__)
OWNER = "owner"  # the key of the owner in a run's lineage
CRASH_LOG = "crash.log"


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


@contextmanager
def crash_log(folder: Path) -> Iterator[None]:
    """While inside, a fatal signal (segfault, abort) writes its Python stack to ``folder/crash.log``.

    Left alone when faulthandler is already on (``PYTHONFAULTHANDLER``: the user wants it on stderr).
    The file is removed when the block ends, so one that remains is the stack of the crash.
    """
    import faulthandler

    if faulthandler.is_enabled():
        yield
        return
    path = folder / CRASH_LOG
    with open(path, "w", encoding="utf-8") as out:  # stays open: faulthandler writes to its descriptor
        faulthandler.enable(file=out)
        try:
            yield
        finally:
            faulthandler.disable()
            path.unlink(missing_ok=True)


def dead_reason(run: RunRecord) -> str:
    """One line: how the owner ended (the crash and its innermost dcloop frame when logged), what next."""
    from dcloop.train._checkpoint import latest_checkpoint

    owner = run.lineage[OWNER]
    folder = Path(run.path)
    how = "ended without closing the run: killed, or a native crash"
    crash = _crash_summary(folder / CRASH_LOG)
    if crash:
        how = f"died of {crash} (stack in {folder / CRASH_LOG})"
    again = (
        f"continue it with `dcloop train --resume {run.id[:12]}`"
        if latest_checkpoint(folder / "checkpoint") is not None
        else "start it again with `dcloop train`"
    )
    return (
        f"its process (pid {owner['pid']} on {owner['host']}) {how}; a crashing CPU kernel is avoided "
        f"with `train.threads: 1` or `train.channels_last: false`; {again}"
    )


def _crash_summary(path: Path) -> str | None:
    """``Segmentation fault in dcloop/train/_loop.py line 270 in _step`` from a faulthandler log."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    fatal = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Fatal Python error:")), None)
    if fatal is None:
        return None
    # the crashing thread's stack follows "Current thread ..."; other threads are listed before it
    current = next((i for i, ln in enumerate(lines) if ln.startswith("Current thread")), 0)
    frames = (ln.strip() for ln in lines[current:] if ln.strip().startswith("File "))
    frame = next((f for f in frames if "/dcloop/" in f), None)
    if frame is None:
        return fatal
    file, _, where = frame.removeprefix("File ").partition(", ")
    return f"{fatal} in dcloop{file.strip(chr(34)).rpartition('/dcloop')[2]} {where}"


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
