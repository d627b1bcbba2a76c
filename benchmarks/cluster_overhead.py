"""What the Ray cluster costs a training job, and what a node failure costs it.

Usage: python benchmarks/cluster_overhead.py [--model seed-cnn] [--epochs N] [--cpus 2] [--skip-failure]
       [--skip-overhead] [--health-period-ms 3000] [--health-threshold 5] [--pg-shutdown-timeout 30]

Measures, on this machine, with the real cat-vs-dog Animal-MNIST set and the default recipe for --model
(its own epochs unless --epochs is given):
  * the same job as a user runs it, each in a fresh process: `dcloop train` and, with a one-node
    local cluster already up (its start is timed apart), `dcloop train --cluster --num-workers 1
    --cpus-per-worker CPUS`: wall time of each command, their ratio, each test accuracy, and where
    the cluster run's time went (the driver's and the worker's timestamps in the run record);
  * a node failure: a second node joins, training runs on both, the second node's raylet is killed
    (SIGKILL) after the first epoch; the time from the kill to the node marked dead (Ray's health
    checks), to the new worker group's start, to its workers' imports, and to the resumed job's
    first optimizer step, then the restarts the run records. The head runs with the health-check
    period and threshold given (Ray's defaults: 3000 ms and 5 misses) and Ray Train's wait for the
    old workers to leave their process group (TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S, default 30 s).
Prints tables; asserts nothing. Absolute times depend on the machine's load; compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def workspace(root: Path, model: str, epochs: int | None, cpus: int) -> Any:
    """A workspace with the cat-vs-dog set; the recipe is ``model``'s default (threads = ``cpus``)."""
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.workspace import init_workspace, open_workspace

    init_workspace(root)
    text = f"tracking:\n  mlflow: false\ntrain:\n  model: {model}\n  threads: {cpus}\n"
    text += f"  epochs: {epochs}\n" if epochs else ""
    (root / "dcloop.yaml").write_text(text, encoding="utf-8")
    ws = open_workspace(root, config.load(root / "dcloop.yaml"))
    import_source(ws, "animal-mnist", classes=["cat", "dog"])
    return ws


def cli_train(ws: Any, *args: str) -> tuple[float, Any]:
    """Run `dcloop train ARGS` in the workspace as a user would; its wall time and its run record."""
    from dcloop.store import runs as store_runs

    before = {r.id for r in store_runs.list_runs(ws.store)}
    command = [str(Path(sys.executable).with_name("dcloop")), "train", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ws.root, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed: {done.stderr.strip()[-2000:]}")
    run = next(r for r in store_runs.list_runs(ws.store) if r.id not in before)
    return wall, run


def overhead(ws: Any, cpus: int) -> list[list[Any]]:
    from dcloop.cluster import cluster_down, cluster_up

    start = time.perf_counter()
    cluster_up(ws, num_cpus=cpus, port=free_port())
    up_s = time.perf_counter() - start
    try:
        local_s, local = cli_train(ws)
        remote_s, remote = cli_train(ws, "--cluster", "--num-workers", "1", "--cpus-per-worker", str(cpus))
    finally:
        cluster_down(ws)
    a, b = local.metrics, remote.metrics
    return [
        ["cluster up (before the job, not its cost)", f"{up_s:.1f}", "`dcloop cluster up` with --num-cpus"],
        ["local `dcloop train` wall (s)", f"{local_s:.1f}", f"accuracy {a['accuracy']:.4f}, {a['epochs_run']} epochs"],
        ["cluster `train --cluster` wall (s)", f"{remote_s:.1f}", f"accuracy {b['accuracy']:.4f}, {b['epochs_run']} epochs"],
        ["cluster / local wall", f"{remote_s / local_s:.2f}x", "target <= 1.2x"],
        ["local / cluster training s", f"{a['train_s']:.1f} / {b['train_s']:.1f}", "fit_model's own timer"],
        *timeline(remote),
    ]  # fmt: skip


def timeline(run: Any) -> list[list[Any]]:
    """Where the cluster run's time went, from the driver's marks and its first worker's."""
    from dcloop.cluster._train import attempts

    info = run.lineage["cluster"]
    d = info["marks"]
    w = attempts(Path(run.path), info["launch"])[0][0]["marks"]
    spans = [
        ("  driver: join the cluster", d["called"], d["connected"]),
        ("  driver: open the run (as a local run)", d["connected"], d["submitted"]),
        ("  submit -> worker function starts", d["submitted"], w["entered"]),
        ("  worker: imports (torch, dcloop)", w["entered"], w["imported"]),
        ("  worker: open workspace, write record", w["imported"], w["fit_start"]),
        ("  worker: load data, build model, step 1", w["fit_start"], w["first_step"]),
        ("  worker: training (first step -> end)", w["first_step"], w["fit_end"]),
        ("  worker end -> driver's fit() returns", w["fit_end"], d["returned"]),
    ]
    return [[name, f"{end - begin:.1f}", "s"] for name, begin, end in spans]


def failure(ws: Any, period_ms: int, threshold: int, pg_shutdown_s: int) -> list[list[Any]]:
    import psutil

    from dcloop.cluster import cluster_down, cluster_up, train_on_cluster
    from dcloop.cluster._local import stop_group
    from dcloop.cluster._train import attempts

    # Ray's own (lower-case) names, read by the head's GCS when `cluster up` starts it
    checks = {
        "RAY_health_check_period_ms": str(period_ms),
        "RAY_health_check_failure_threshold": str(threshold),
    }
    os.environ.update(checks)
    # how long Ray Train's controller waits for the surviving workers to leave the torch process
    # group (their rank is stuck in an allreduce with the lost one): read by the controller's process
    os.environ["TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S"] = str(pg_shutdown_s)
    head = cluster_up(ws, num_cpus=1, port=free_port())
    folder = Path(tempfile.mkdtemp(prefix="dcloop-b", dir="/tmp"))
    pgid = join_node(head, folder, "b", 1)
    raylet = next(
        p.pid
        for p in psutil.process_iter(["name"])
        if p.info["name"] == "raylet" and os.getpgid(p.pid) == pgid
    )
    marks: dict[str, float] = {}
    threading.Thread(target=_kill_after_first_epoch, args=(ws, raylet, marks), daemon=True).start()
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
    resumed = attempts(Path(run.path), info["launch"])[-1][0]["marks"]
    kill = marks["kill"]
    rows = [
        ("node kill -> node marked dead (s)", marks.get("dead", float("nan")), f"health checks every {period_ms} ms, {threshold} misses"),
        ("node kill -> resumed worker starts (s)", resumed["entered"], f"old group stopped (process group shutdown timeout {pg_shutdown_s} s), new one started"),
        ("node kill -> resumed worker imported (s)", resumed["imported"], ""),
        ("node kill -> resumed first step (s)", resumed["first_step"], f"data, model, checkpoint loaded; restarts {info['restarts']}, world sizes {info['world_sizes']}"),
    ]  # fmt: skip
    table = [[name, f"{at - kill:.1f}", note] for name, at, note in rows]
    return [*table, ["run after the loss", run.status, f"accuracy {run.metrics['accuracy']:.4f}"]]


def join_node(head: dict[str, Any], folder: Path, name: str, cpus: int) -> int:
    """Start a ``cpus``-CPU node (custom resource ``bench_NAME``) that joins ``head``; its process group."""
    from dcloop.cluster._local import OBJECT_STORE_BYTES, start_node

    args = ["start", "--address", head["address"], "--temp-dir", str(folder / name), "--num-cpus", str(cpus)]
    args += ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(OBJECT_STORE_BYTES)]
    args += ["--disable-usage-stats", "--resources", json.dumps({f"bench_{name}": 1})]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": head["token_path"]}
    return start_node(args, env, folder / f"{name}.log")


def _kill_after_first_epoch(ws: Any, raylet: int, marks: dict[str, float]) -> None:
    """SIGKILL the second node's raylet once an epoch is recorded and stamp when Ray marks the node
    dead (polling: these are other processes' events). The next recorded epoch says nothing here:
    the lost node's worker may finish the epoch it is in before it notices its raylet is gone."""
    import ray

    from dcloop.store import runs as store_runs

    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline and "dead" not in marks:
        runs = store_runs.list_runs(ws.store)
        epochs = store_runs.list_epochs(ws.store, runs[0].id) if runs else []
        if epochs and "kill" not in marks:
            os.kill(raylet, signal.SIGKILL)
            marks["kill"] = time.time()
        elif "kill" in marks and ray.is_initialized() and sum(n["Alive"] for n in ray.nodes()) < 2:
            marks["dead"] = time.time()
        time.sleep(0.1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def print_rows(rows: list[list[Any]]) -> None:
    for name, value, note in rows:
        print(f"{name:<44}  {value:>12}  {note}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="seed-cnn")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's own")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--skip-failure", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--failure-epochs", type=int, default=3)
    parser.add_argument("--health-period-ms", type=int, default=3000)
    parser.add_argument("--health-threshold", type=int, default=5)
    parser.add_argument("--pg-shutdown-timeout", type=int, default=30, help="s (Ray Train's default: 30)")
    args = parser.parse_args()
    print(f"{'measure':<44}  {'value':>12}  note", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_overhead:
            print_rows(overhead(workspace(Path(tmp) / "a", args.model, args.epochs, args.cpus), args.cpus))
        if not args.skip_failure:
            ws = workspace(Path(tmp) / "b", args.model, args.failure_epochs, 1)
            print_rows(failure(ws, args.health_period_ms, args.health_threshold, args.pg_shutdown_timeout))


if __name__ == "__main__":
    main()
