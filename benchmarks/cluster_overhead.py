"""What the Ray cluster costs a training job, and what a node failure costs it.

Usage: python benchmarks/cluster_overhead.py [--model seed-cnn] [--epochs 2] [--cpus 2] [--skip-failure]

Measures, on this machine, with the real cat-vs-dog Animal-MNIST set and the default recipe for --model:
  * the same job run locally (`train`) and on a one-node local Ray cluster (`train --cluster`, one
    worker with the same CPUs): wall time of each (run record's cost.wall_s: open to report written),
    their ratio, and each test accuracy;
  * a node failure: a second node joins, training runs on both, the second node's raylet is killed
    (SIGKILL) after the first epoch; reports the seconds from the kill to the resumed workers' start
    and to the next recorded epoch, and the restarts the run records.
Prints one table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def workspace(root: Path, model: str, epochs: int, cpus: int) -> Any:
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(root)
    text = f"tracking:\n  mlflow: false\ntrain:\n  model: {model}\n  epochs: {epochs}\n  threads: {cpus}\n"
    (root / "dcloop.yaml").write_text(text, encoding="utf-8")
    ws = open_workspace(root, config.load(root / "dcloop.yaml"))
    import_source(ws, "animal-mnist", classes=["cat", "dog"])
    return ws


def overhead(ws: Any, cpus: int) -> list[list[Any]]:
    from dcloop.cluster import cluster_down, cluster_up, train_on_cluster
    from dcloop.train import train

    local = train(ws, ws.config.train)
    cluster_up(ws, num_cpus=cpus, port=_free_port())
    try:
        settings = ws.config.cluster.model_copy(update={"num_workers": 1, "cpus_per_worker": float(cpus)})
        remote = train_on_cluster(ws, ws.config.train, settings=settings)
    finally:
        cluster_down(ws)
    a, b = local.metrics, remote.metrics
    ratio = b["cost"]["wall_s"] / a["cost"]["wall_s"]
    return [
        ["local run wall (s)", f"{a['cost']['wall_s']:.1f}", f"accuracy {a['accuracy']:.4f}"],
        ["1-node cluster run wall (s)", f"{b['cost']['wall_s']:.1f}", f"accuracy {b['accuracy']:.4f}"],
        ["cluster / local wall", f"{ratio:.2f}x", "target <= 1.2x"],
        ["local / cluster training s", f"{a['train_s']:.1f} / {b['train_s']:.1f}", "fit_model's own timer"],
    ]


def failure(ws: Any, cpus: int) -> list[list[Any]]:
    import psutil

    from dcloop.cluster import cluster_down, cluster_up, train_on_cluster
    from dcloop.cluster._local import OBJECT_STORE_BYTES, start_node, stop_group
    from dcloop.store import runs as store_runs

    head = cluster_up(ws, num_cpus=1, port=_free_port())
    folder = Path(tempfile.mkdtemp(prefix="dcloop-b", dir="/tmp"))
    args = ["start", "--address", head["address"], "--temp-dir", str(folder / "b"), "--num-cpus", "1"]
    args += ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(OBJECT_STORE_BYTES)]
    args += ["--disable-usage-stats", "--resources", json.dumps({"bench_b": 1})]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": head["token_path"]}
    pgid = start_node(args, env, folder / "b.log")
    raylet = next(
        p.pid
        for p in psutil.process_iter(["name"])
        if p.info["name"] == "raylet" and os.getpgid(p.pid) == pgid
    )
    marks: dict[str, float] = {}

    def kill_after_first_epoch() -> None:
        while True:
            runs = store_runs.list_runs(ws.store)
            epochs = store_runs.list_epochs(ws.store, runs[0].id) if runs else []
            if epochs and "kill" not in marks:
                os.kill(raylet, signal.SIGKILL)
                marks["kill"], marks["epochs_at_kill"] = time.time(), len(epochs)
            elif "kill" in marks and len(epochs) > marks["epochs_at_kill"]:
                marks["next_epoch"] = time.time()
                return
            time.sleep(0.1)

    threading.Thread(target=kill_after_first_epoch, daemon=True).start()
    try:
        settings = ws.config.cluster.model_copy(
            update={"num_workers": 2, "min_workers": 1, "cpus_per_worker": 1.0}
        )
        run = train_on_cluster(ws, ws.config.train, settings=settings)
    finally:
        stop_group(pgid)
        cluster_down(ws)
        shutil.rmtree(folder, ignore_errors=True)
    info = run.lineage["cluster"]
    records = [
        json.loads(p.read_text()) for p in (Path(run.path) / "cluster" / info["launch"]).glob("*.json")
    ]
    resumed = min(r["started"] for r in records if r["started"] > marks["kill"])
    return [
        ["node kill -> resumed workers started (s)", f"{resumed - marks['kill']:.1f}", f"restarts {info['restarts']}"],
        ["node kill -> next epoch recorded (s)", f"{marks.get('next_epoch', float('nan')) - marks['kill']:.1f}", f"world sizes {info['world_sizes']}"],
        ["run after the loss", run.status, f"accuracy {run.metrics['accuracy']:.4f}"],
    ]  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="seed-cnn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--skip-failure", action="store_true")
    args = parser.parse_args()
    print(f"{'measure':<40}  {'value':>10}  note", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        _print(overhead(workspace(Path(tmp) / "a", args.model, args.epochs, args.cpus), args.cpus))
        if not args.skip_failure:
            _print(failure(workspace(Path(tmp) / "b", args.model, args.epochs + 1, 1), args.cpus))


def _print(rows: list[list[Any]]) -> None:
    for name, value, note in rows:
        print(f"{name:<40}  {value:>10}  {note}", flush=True)


if __name__ == "__main__":
    main()
