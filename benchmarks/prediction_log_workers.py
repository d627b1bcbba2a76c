"""Two server workers' prediction logs committing to one SQLite store: commit latency with and without
the lock file through which `dcloop serve --workers N` makes them take turns; prints a table.

Each of two processes commits seed-cnn-sized batches (``--batch`` rows, 28x28 uint8 inputs kept, 10
classes) into the same fresh workspace store for ``--seconds``, as a server's log thread does. Without
the lock, a writer that finds the store locked waits in SQLite's busy handler, which sleeps 1, 2, 5,
10 ms and more between tries; with it, the waiting writer sleeps in the kernel until the other's commit
ends. Rounds alternate the two settings.

Usage: .venv/bin/python benchmarks/prediction_log_workers.py [--seconds 6] [--rounds 2] [--batch 16]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = [f"class{i}" for i in range(10)]


class Model:
    id, name, version = "0" * 32, "bench", 1


def _writer(root: str, lock: str | None, seconds: float, batch: int, out: mp.Queue) -> None:
    from dcloop.deploy._service import taking_turns
    from dcloop.store.predictions import log_predictions, new_prediction_rows
    from dcloop.workspace import open_workspace

    store = open_workspace(Path(root)).store
    rng = np.random.default_rng(os.getpid())
    pixels = rng.integers(0, 256, (batch, 1, 28, 28), dtype=np.uint8)
    probs = rng.random((batch, 10)).astype(np.float32)

    turn = contextlib.nullcontext if lock is None else taking_turns(Path(lock))

    def commit(rows) -> None:
        with turn():
            log_predictions(store, rows)

    waits, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        rows = new_prediction_rows(pixels, probs, CLASSES, Model, latency_ms=[1.0] * batch)
        start = time.perf_counter()
        commit(rows)
        waits.append(time.perf_counter() - start)
    out.put(waits)


def _round(locked: bool, seconds: float, batch: int) -> list[float]:
    from dcloop.workspace import init_workspace

    root = Path(tempfile.mkdtemp(prefix="dcloop-bench-")) / "ws"
    init_workspace(root)
    out: mp.Queue = mp.Queue()
    lock = str(root / "prediction-log.lock") if locked else None
    writers = [mp.Process(target=_writer, args=(str(root), lock, seconds, batch, out)) for _ in range(2)]
    for writer in writers:
        writer.start()
    waits = [w for _ in writers for w in out.get()]
    for writer in writers:
        writer.join()
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="Seconds each round writes.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of each setting, alternating.")
    parser.add_argument("--batch", type=int, default=16, help="Rows per commit.")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"2 writers, {args.batch} rows per commit, {args.seconds:.0f} s a round", title_justify="left"
    )
    for column in ("writers", "round", "commits/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column)
    for n in range(args.rounds):
        for locked in (False, True):
            ms = np.asarray(_round(locked, args.seconds, args.batch)) * 1000
            table.add_row(
                "take turns (lock file)" if locked else "SQLite busy handler",
                str(n + 1),
                f"{len(ms) / args.seconds:,.0f}",
                f"{np.percentile(ms, 50):.2f}",
                f"{np.percentile(ms, 99):.2f}",
                f"{ms.max():.1f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
