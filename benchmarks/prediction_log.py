"""The prediction log's write path alone: CPU per stored prediction by rows per commit, and what one
durable commit costs on this disk; prints a table.

The server commits whatever batches finished during the previous commit in one transaction (a group
commit), so rows per commit grow with load. Each setting commits seed-cnn-sized rows (28x28 uint8 input
kept, 10 classes) into a fresh SQLite store (WAL, synchronous=FULL, as a workspace's) in the way the
server does (``new_prediction_rows``), and, for comparison, through one record per row
(``new_predictions``); then the same into an in-memory store, which leaves out the disk's share. CPU is this thread's user and system time (getrusage), so other jobs on the
machine move it less than the wall times, which are noisy on shared cores; compare within one run.

Usage: .venv/bin/python benchmarks/prediction_log.py [--rows 4000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = [f"class{i}" for i in range(10)]
SIZES = (1, 4, 16, 64)


class Model:
    id, name, version = "0" * 32, "bench", 1


def _usage() -> tuple[float, float]:
    used = resource.getrusage(resource.RUSAGE_THREAD)
    return used.ru_utime, used.ru_stime


def _measure(
    commit: Callable[[Any], None], build: Callable[[], Any], commits: int
) -> tuple[float, float, float]:
    """User and system CPU seconds and wall seconds per ``commit(build())``."""
    (user, system), start = _usage(), time.perf_counter()
    for _ in range(commits):
        commit(build())
    wall = time.perf_counter() - start
    now = _usage()
    return (now[0] - user) / commits, (now[1] - system) / commits, wall / commits


def _raw_commit_ms(folder: Path, synchronous: str, commits: int = 200) -> float:
    """Wall time of a one-row sqlite3 commit (WAL) at ``synchronous``: with FULL, one fsync each."""
    db = sqlite3.connect(folder / f"raw-{synchronous}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
    start = time.perf_counter()
    for _ in range(commits):
        db.execute("BEGIN")
        db.execute("INSERT INTO t (data) VALUES (?)", (bytes(800),))
        db.execute("COMMIT")
    db.close()
    return (time.perf_counter() - start) / commits * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4000, help="Rows stored per setting.")
    parser.add_argument("--dir", type=Path, help="Folder for the stores (default: a temporary one).")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from dcloop.store import close_store, open_store
    from dcloop.store.predictions import log_predictions, new_prediction_rows, new_predictions

    folder = Path(tempfile.mkdtemp(prefix="dcloop-log-", dir=args.dir))
    rng = np.random.default_rng(0)
    table = Table(title="prediction log: CPU per stored row (this thread) and wall per commit")
    for column in (
        "rows/commit",
        "path",
        "store",
        "user us/row",
        "system us/row",
        "CPU us/row",
        "wall ms/commit",
    ):
        table.add_column(column)
    for size in SIZES:
        pixels = rng.integers(0, 256, (size, 1, 28, 28), dtype=np.uint8)
        probs = rng.dirichlet(np.ones(len(CLASSES)), size=size).astype(np.float32)
        batch = (pixels, probs, CLASSES, Model())
        paths = {
            "columns (server)": partial(new_prediction_rows, *batch, latency_ms=[1.0] * size),
            "one record per row": partial(new_predictions, *batch, latency_ms=[1.0] * size),
        }
        for (name, build), where in itertools.product(paths.items(), ("file", "memory")):
            # in memory: no WAL and no fsync, so what is left is the Python and SQLite CPU of the rows
            url = f"sqlite:///{folder / f'{size}-{len(name)}.db'}" if where == "file" else "sqlite://"
            store = open_store(url)
            user, system, wall = _measure(partial(log_predictions, store), build, max(args.rows // size, 20))
            close_store(url)
            per_row = [f"{v / size * 1e6:.1f}" for v in (user, system, user + system)]
            table.add_row(str(size), name, where, *per_row, f"{wall * 1000:.2f}")
    Console(width=120).print(table)
    full, off = _raw_commit_ms(folder, "FULL"), _raw_commit_ms(folder, "OFF")
    print(
        f"one-row sqlite3 commit in {folder}: {full:.2f} ms with synchronous=FULL (one fsync), "
        f"{off:.3f} ms with synchronous=OFF: the fsync costs {full - off:.2f} ms"
    )


if __name__ == "__main__":
    main()
