"""`dcloop serve --workers 2`: /metrics adds up every worker (prometheus_client multiprocess mode)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from deploykit import free_port, wait_ready

N = 40


def _sample(text: str, pattern: str) -> float:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, pattern
    return float(match.group(1))


def test_metrics_of_all_workers_add_up_and_their_files_go_away(served_ws, tmp_path: Path) -> None:
    port, scratch = free_port(), tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}  # where the workers' metric files go
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [
        sys.executable,
        "-m",
        "dcloop.cli",
        "serve",
        "--model",
        "pets@1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    server = subprocess.Popen(
        cmd, cwd=served_ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(N):
                assert http.post("/predict", json={"pixels": [[i] * 28] * 28}).status_code == 200
            assert len(list(scratch.glob("dcloop-metrics-*"))) == 1  # one shared folder while serving
            scrapes = [http.get("/metrics").text for _ in range(4)]  # whichever worker answers
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    for text in scrapes:
        assert _sample(text, r'^dcloop_requests_total\{endpoint="/predict",status="200"\} (\S+)$') == N
        assert _sample(text, r'^dcloop_predictions_total\{model="pets@1"\} (\S+)$') == N
        assert _sample(text, r"^dcloop_batch_size_count (\S+)$") >= 1
        assert re.search(r'^dcloop_model_info\{.*model="pets".*pid="\d+".*\} 1\.0$', text, re.MULTILINE)
    assert server.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert list(scratch.glob("dcloop-metrics-*")) == []  # removed when the server stops
