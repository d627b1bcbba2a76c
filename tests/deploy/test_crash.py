"""kill -9 of `dcloop serve` under load: every acknowledged prediction and label survives."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
from deploykit import free_port, wait_ready

from dcloop.feedback import labelled_predictions
from dcloop.store.predictions import list_predictions

TOKEN = "crash-token"


def _start(ws, port: int) -> subprocess.Popen:
    env = {**os.environ, "DCLOOP_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "dcloop.cli", "serve", "--model", "pets@champion", "--port", str(port)]
    return subprocess.Popen(cmd, cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_acknowledged_predictions_and_labels_survive_kill_9(served_ws) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(served_ws, port)
    acked: list[str] = []
    labelled: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.post("/predict", json={"pixels": [[worker * 20] * 28] * 28})
                    if r.status_code == 200:
                        pid = r.json()["prediction_id"]
                        acked.append(pid)
                        f = http.post("/feedback", json={"prediction_id": pid, "label": "dog"},
                                      headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                        if f.status_code == 200:
                            labelled.append(pid)
                except httpx.TransportError:
                    return  # the server is gone

    try:
        wait_ready(url)
        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(labelled) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-load: requests are in flight
        server.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    assert len(labelled) >= 150

    db = served_ws.state / "dcloop.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {p.id for p in list_predictions(served_ws.store)}
    assert set(acked) <= stored
    assert set(labelled) <= {p.id for p in labelled_predictions(served_ws.store)}

    restarted = _start(served_ws, port)
    try:
        wait_ready(url)
        assert httpx.post(f"{url}/predict", json={"pixels": [[0] * 28] * 28}).status_code == 200
    finally:
        restarted.terminate()
        restarted.wait(timeout=10)
