"""`dcloop serve --workers 2`: /metrics adds up every worker (prometheus_client multiprocess mode), a
model switch on one worker is answered once it reaches them all, and the workers stop with their
server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from deploykit import CLASSES, free_port, wait_ready

N = 40
TOKEN = "s3cret"


def _sample(text: str, pattern: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, pattern
    return float(match.group(1))


@contextmanager
def _two_workers(ws, scratch: Path) -> Iterator[str]:
    """`dcloop serve --workers 2` on a free port, its metric files under ``scratch``; yields its URL and
    checks on the way out that it stopped cleanly."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(scratch), "DCLOOP_TOKEN": TOKEN}  # where the workers' files go
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "dcloop.cli", "serve", "--model", "pets@1", "--port", str(port)]
    server = subprocess.Popen(
        [*cmd, "--workers", "2"], cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr.decode(errors="replace")[-2000:]


def test_metrics_of_all_workers_add_up_and_their_files_go_away(served_ws, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with _two_workers(served_ws, scratch) as url, httpx.Client(base_url=url, timeout=30) as http:
        for i in range(N):
            assert http.post("/predict", json={"pixels": [[i] * 28] * 28}).status_code == 200
        assert len(list(scratch.glob("dcloop-metrics-*"))) == 1  # one shared folder while serving
        scrapes = [http.get("/metrics").text for _ in range(4)]  # whichever worker answers
    for text in scrapes:
        assert _sample(text, r'^dcloop_requests_total\{endpoint="/predict",status="200"\} (\S+)$') == N
        assert _sample(text, r'^dcloop_predictions_total\{model="pets@1"\} (\S+)$') == N
        assert _sample(text, r"^dcloop_batch_size_count (\S+)$") >= 1
        assert re.search(r'^dcloop_model_info\{.*model="pets".*pid="\d+".*\} 1\.0$', text, re.MULTILINE)
    assert list(scratch.glob("dcloop-metrics-*")) == []  # removed when the server stops


def _served(http: httpx.Client) -> dict[str, str]:
    """Each worker's pid -> the version it serves, from the summed /metrics."""
    text = http.get("/metrics").text
    found = re.findall(r"^dcloop_model_info\{([^}]*)\} 1\.0$", text, re.MULTILINE)
    labels = [dict(re.findall(r'(\w+)="([^"]*)"', item)) for item in found]
    return {item["pid"]: item["version"] for item in labels}


def _until(check, what: str, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while (value := check()) is None:
        assert time.monotonic() < deadline, what
    return value


def test_a_model_switch_on_one_worker_reaches_every_worker(
    served_ws, onnx_path: Path, tmp_path: Path
) -> None:
    from dcloop.deploy import register_model_version

    register_model_version(served_ws, onnx_path, name="pets", classes=CLASSES)  # pets@2
    with _two_workers(served_ws, tmp_path) as url, httpx.Client(base_url=url, timeout=30) as http:
        before = _until(lambda: s if len(s := _served(http)) == 2 else None, "both workers start")
        assert set(before.values()) == {"1"}
        answer = http.post(
            "/admin/model", json={"model": "pets@2"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 200 and answer.json()["model_version"] == "pets@2"
        assert "workers_behind" not in answer.json()
        after = _served(http)  # the answer came once every worker served pets@2: no waiting here
        assert len(after) == 2 and set(after.values()) == {"2"}
        assert set(after) == set(before)  # the same two processes, each now serving pets@2
        for _ in range(10):  # new connections, so whichever worker takes them answers
            with httpx.Client(base_url=url, timeout=30) as fresh:
                assert (
                    fresh.post("/predict", json={"pixels": [[0] * 28] * 28}).json()["model_version"]
                    == "pets@2"
                )


def test_workers_stop_when_their_server_is_killed(served_ws, tmp_path: Path) -> None:
    """kill -9 of the supervising process: the kernel kills its workers with it, what they acknowledged
    is stored, and the port is free for a restart (orphaned, they would have served on, holding it)."""
    import psutil

    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "DCLOOP_TOKEN": TOKEN}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "dcloop.cli", "serve", "--model", "pets@1", "--port", str(port)]
    server = subprocess.Popen(
        [*cmd, "--workers", "2"], cwd=served_ws.root, env=env, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        with httpx.Client(base_url=url, timeout=30) as http:
            workers = _until(lambda: s if len(s := _served(http)) == 2 else None, "both workers start")
            answer = http.post("/predict", json={"pixels": [[9] * 28] * 28})
        assert answer.status_code == 200
        assert {p.pid for p in psutil.Process(server.pid).children()} >= {int(pid) for pid in workers}
    finally:
        server.kill()
        server.wait(timeout=60)
    procs = [psutil.Process(int(pid)) for pid in workers if psutil.pid_exists(int(pid))]
    _, alive = psutil.wait_procs(procs, timeout=60)
    assert not alive, f"workers {[p.pid for p in alive]} outlived their killed server"
    from dcloop.store.predictions import list_predictions

    assert answer.json()["prediction_id"] in {p.id for p in list_predictions(served_ws.store)}
    with socket.socket() as probe:  # nothing holds the port any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
