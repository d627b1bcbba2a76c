"""`dcloop serve --cluster` (Ray Serve replicas) against the single-process `dcloop serve`; prints a table.

Usage: .venv/bin/python benchmarks/cluster_serve.py [--model seed-cnn] [--requests 2000] [--seconds 3]
       [--concurrency 1,16,64] [--cpus 2]

One workspace, one model (random weights: speed only), every prediction stored as a user's server
stores it. The single-process server runs first; then a local one-node Ray head (`cluster up` with
--cpus CPUs, its start not timed) serves it with 1 and with 2 replicas (1 CPU each), each behind Ray
Serve's HTTP proxy. The load generator is serve_throughput.py's (keep-alive HTTP/1.1 connections,
JSON /predict), on the same machine: client, proxy and replicas share its cores, so the replicas
cannot scale past them here; the table shows what the proxy hop costs and what a second replica buys
on this machine. Absolute numbers move with the machine's load; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_throughput import CLASSES, _bodies, _free_port, _load, _serve


def _workspace(tmp: Path, model: str) -> Any:
    import torch

    from dcloop.deploy import promote, register_model_version
    from dcloop.optimize import export_onnx
    from dcloop.train._models import create_model
    from dcloop.workspace import init_workspace

    ws = init_workspace(tmp / "ws")
    (ws.root / "dcloop.yaml").write_text("tracking:\n  mlflow: false\n", encoding="utf-8")
    torch.manual_seed(0)
    onnx_path = export_onnx(create_model(model, 1, 10, 28), tmp / "model.onnx", input_shape=(1, 28, 28))
    register_model_version(ws, onnx_path, name="bench", classes=CLASSES)
    promote(ws, "bench", version=1)
    return ws


def _measure(label: str, cmd: list[str], ws: Any, levels: list[int], args: argparse.Namespace) -> list[list]:
    """Start the server command (stopped with SIGTERM, as Ctrl-C would), then load it at each level."""
    server, url = _serve(cmd, ws.root, env={**os.environ, "DCLOOP_WORKSPACE": str(ws.root)})
    body = _bodies(np.random.default_rng(0), 1)["predict"]
    rows = []
    try:
        for c in levels:
            rps, p50, p99, errors = asyncio.run(_load(url, *body, c, args.requests, args.seconds))
            rows.append([label, c, rps, p50, p99, errors])
            print(
                f"  {label:<28} c={c:<3} {rps:7.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {errors}"
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="seed-cnn", help="Zoo model to export (random weights).")
    parser.add_argument("--requests", type=int, default=2000, help="Most requests per setting.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Time cap per setting.")
    parser.add_argument("--concurrency", default="1,16,64", help="Concurrent clients to sweep.")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the local Ray head offers.")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from dcloop.cluster import cluster_down, cluster_up

    levels = [int(c) for c in args.concurrency.split(",")]
    ws = _workspace(Path(tempfile.mkdtemp(prefix="dcloop-bench-")), args.model)
    print(
        f"model {args.model}, /predict JSON; {os.cpu_count()} CPUs; <= {args.requests} requests or "
        f"{args.seconds:g} s per setting; load average {os.getloadavg()[0]:.1f}"
    )
    serve = [sys.executable, "-m", "dcloop.cli", "serve"]
    rows = _measure("single process (uvicorn)", serve, ws, levels, args)
    cluster_up(ws, num_cpus=args.cpus, port=_free_port())
    try:
        for n in (1, 2):
            cmd = [*serve, "--cluster", "--replicas", str(n)]
            rows += _measure(f"Ray Serve, {n} replica{'s' if n > 1 else ''}", cmd, ws, levels, args)
    finally:
        cluster_down(ws)
    _print_table(rows, levels)


def _print_table(rows: list[list], levels: list[int]) -> None:
    base = {r[1]: r[2] for r in rows if r[0].startswith("single")}
    print("\n| server | clients | req/s | x single | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, c, rps, p50, p99, errors in rows:
        print(f"| {label} | {c} | {rps:.0f} | {rps / base[c]:.2f} | {p50:.1f} | {p99:.1f} | {errors} |")
    print(f"\nconcurrency levels {levels}; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
