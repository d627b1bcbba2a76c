"""Soak: `dcloop serve` under a steady /predict load for a long time; prints requests, errors, p99,
server memory and database size over time, so a leak or an unbounded prediction log shows as a trend.

The server runs as its own process with the prediction log's retention bounds set small (so they are
reached within the run); ``--clients`` keep-alive connections on loopback each send one request at a
time (a minimal HTTP/1.1 client: a Python HTTP library would cost more CPU than the server under test).
Every ``--every`` seconds one row: requests and errors in the interval, req/s, p99 latency, the server
process tree's RSS, the database files (db + WAL) and the prediction rows kept. The size must level
off under ``--max-predictions-mb`` (plus the WAL and the aggregates of dropped rows).

Usage: .venv/bin/python benchmarks/soak.py [--minutes 30] [--clients 16] [--every 60]
       [--max-predictions-mb 256] [--max-input-mb 128] [--retention-every 10] [--model seed-cnn]
       [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]   (the store on PostgreSQL)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

CLASSES = [f"class{i}" for i in range(10)]


class Load:
    """``clients`` keep-alive connections sending /predict bodies in turn; counts and latencies since the
    last ``take``."""

    def __init__(self, url: str, bodies: list[bytes], clients: int) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port, self.bodies, self.clients = int(port), bodies, clients
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = False

    def take(self) -> tuple[int, int, float]:
        """Requests, errors and p99 (ms) since the last call."""
        done, errors = self.latencies, self.errors
        self.latencies, self.errors = [], 0
        p99 = float(np.percentile(np.asarray(done) * 1000, 99)) if done else float("nan")
        return len(done), errors, p99

    async def run(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.clients)))

    async def _client(self, index: int) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        n = index
        try:
            while not self.stop:
                body = self.bodies[n % len(self.bodies)]
                n += self.clients
                head = (
                    f"POST /predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                start = time.perf_counter()
                writer.write(head.encode() + body)
                status, length = await _read_head(reader)
                await reader.readexactly(length)
                self.latencies.append(time.perf_counter() - start)
                self.errors += status != 200
        finally:
            writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return int(lines[0].split(" ")[1]), length


def _rss_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in tree) / 2**20


def _db_state(db: Path | str) -> tuple[float, float, int]:
    """The database file and its WAL (MB), and the prediction rows kept (a read-only look).

    PostgreSQL (``db`` a URL): the tables of the prediction log with their indexes and TOAST, no WAL.
    """
    if isinstance(db, str):
        import sqlalchemy

        engine = sqlalchemy.create_engine(db)
        try:
            with engine.connect() as conn:
                size = conn.execute(
                    sqlalchemy.text(
                        "SELECT pg_total_relation_size('predictions') + pg_total_relation_size('feedback') "
                        "+ pg_total_relation_size('prediction_windows')"
                    )
                ).scalar()
                rows = conn.execute(sqlalchemy.text("SELECT count(*) FROM predictions")).scalar()
        finally:
            engine.dispose()
        return int(size or 0) / 2**20, 0.0, int(rows or 0)
    files = [db, db.with_name(db.name + "-wal")]
    sizes = [f.stat().st_size / 2**20 if f.exists() else 0.0 for f in files]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
    return sizes[0], sizes[1], int(rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


def _workspace(args) -> Path:
    import torch

    from dcloop.deploy import promote, register_model_version
    from dcloop.optimize import export_onnx
    from dcloop.train._models import create_model
    from dcloop.workspace import init_workspace, open_workspace

    tmp = Path(tempfile.mkdtemp(prefix="dcloop-soak-"))
    ws = init_workspace(tmp / "ws")
    config = ws.config.model_dump(mode="json")
    if args.store_url:
        config["store"]["url"] = args.store_url
    config["feedback"].update(
        max_predictions_mb=args.max_predictions_mb,
        max_input_mb=args.max_input_mb,
        retention_every_s=args.retention_every,
    )
    (ws.root / "dcloop.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    ws = open_workspace(ws.root)
    torch.manual_seed(0)
    onnx_path = export_onnx(create_model(args.model, 1, 10, 28), tmp / "model.onnx", input_shape=(1, 28, 28))
    register_model_version(ws, onnx_path, name="soak", classes=CLASSES)
    promote(ws, "soak", version=1)
    return ws.root


async def _soak(url: str, pid: int, db: Path | str, args) -> list[list[float]]:
    rng = np.random.default_rng(0)
    bodies = [json.dumps({"pixels": rng.integers(0, 256, (28, 28)).tolist()}).encode() for _ in range(64)]
    load = Load(url, bodies, args.clients)
    task = asyncio.create_task(load.run())
    rows: list[list[float]] = []
    start = time.monotonic()
    total = errors_total = 0
    print(f"{'min':>6} {'requests':>10} {'errors':>7} {'req/s':>7} {'p99 ms':>7} {'RSS MB':>7} "
          f"{'db MB':>7} {'wal MB':>7} {'rows':>9}", flush=True)  # fmt: skip
    try:
        while time.monotonic() - start < args.minutes * 60:
            await asyncio.sleep(min(args.every, args.minutes * 60 - (time.monotonic() - start)))
            if task.done():
                task.result()  # a client failed: raise its error
            n, errors, p99 = load.take()
            total, errors_total = total + n, errors_total + errors
            rss = _rss_mb(pid)
            db_mb, wal_mb, kept = await asyncio.to_thread(_db_state, db)
            minute = (time.monotonic() - start) / 60
            rows.append([minute, n, errors, n / args.every, p99, rss, db_mb, wal_mb, kept])
            print(f"{minute:6.1f} {n:10d} {errors:7d} {n / args.every:7.0f} {p99:7.1f} {rss:7.0f} "
                  f"{db_mb:7.1f} {wal_mb:7.1f} {kept:9d}", flush=True)  # fmt: skip
    finally:
        load.stop = True
        await asyncio.wait_for(task, 30)
    print(f"total {total} requests, {errors_total} errors", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="How long the load runs.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent keep-alive clients.")
    parser.add_argument("--every", type=float, default=60.0, help="Seconds between printed rows.")
    parser.add_argument(
        "--max-predictions-mb", type=float, default=256.0, help="feedback.max_predictions_mb."
    )
    parser.add_argument("--max-input-mb", type=float, default=128.0, help="feedback.max_input_mb.")
    parser.add_argument("--retention-every", type=float, default=10.0, help="feedback.retention_every_s.")
    parser.add_argument("--model", default="seed-cnn", help="Zoo model to export (random weights).")
    parser.add_argument(
        "--pg-url", help="Run on PostgreSQL: a server URL; the soak uses a fresh schema there and drops it."
    )
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args.store_url, schema = None, None
    if args.pg_url:
        schema = _create_schema(args.pg_url)
        sep = "&" if "?" in args.pg_url else "?"
        args.store_url = f"{args.pg_url}{sep}options=-csearch_path%3D{schema}"
    try:
        _run(args)
    finally:
        if schema is not None:
            _drop_schema(args.pg_url, schema)


def _create_schema(url: str) -> str:
    import uuid

    import sqlalchemy

    schema = f"soak_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return schema


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _run(args) -> None:
    root = _workspace(args)
    port = _free_port()
    cmd = [sys.executable, "-m", "dcloop.cli", "serve", "--model", "soak@champion", "--port", str(port)]
    server = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    print(
        f"model {args.model}; {args.clients} clients for {args.minutes:g} min; {os.cpu_count()} CPUs; bounds: "
        f"max_predictions_mb {args.max_predictions_mb:g}, max_input_mb {args.max_input_mb:g}, "
        f"every {args.retention_every:g} s; store {'PostgreSQL' if args.store_url else 'SQLite'}; workspace {root}",
        flush=True,
    )
    try:
        _wait_ready(url)
        db = args.store_url or root / ".dcloop" / "dcloop.db"
        rows = asyncio.run(_soak(url, server.pid, db, args))
    finally:
        server.terminate()
        server.wait(timeout=60)
    last = rows[len(rows) * 2 // 3 :] or rows
    print(
        f"last third: db {min(r[6] for r in last):.1f}-{max(r[6] for r in last):.1f} MB, "
        f"RSS {min(r[5] for r in last):.0f}-{max(r[5] for r in last):.0f} MB, "
        f"p99 {max(r[4] for r in last):.1f} ms at most",
        flush=True,
    )


if __name__ == "__main__":
    main()
