"""A full disk under `dcloop serve`: writes answer 503 with a clear error, the server recovers when space
returns, and no acknowledged prediction or label is lost.

Twice: on a small tmpfs that a filler file fills to the last byte (the real thing; needs root to mount,
skipped otherwise), and with SQLite's ``max_page_count`` stopping the database from growing, which fails
writes the same way (SQLITE_FULL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from deploykit import CLASSES, free_port, tiny_cnn_onnx, wait_ready
from sqlalchemy import event

from dcloop.store import close_store
from dcloop.store.predictions import labelled_predictions, list_predictions

TOKEN = {"Authorization": "Bearer s3cret"}


class TmpfsDisk:
    """A 24 MB tmpfs; ``fill`` writes a file until the device has no byte left, ``free`` deletes it."""

    def __init__(self, mount: Path) -> None:
        self.mount, self.filler = mount, mount / "filler"

    def fill(self, store) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 1):  # big chunks, then the last bytes
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)

    def free(self, store) -> None:
        self.filler.unlink()


class PageCapDisk:
    """SQLite's per-connection page cap, applied on every checkout: ``fill`` caps the file at its size."""

    def __init__(self) -> None:
        self.cap = 2**31 - 2

    def fill(self, store) -> None:
        with store.engine.connect() as conn:
            self.cap = int(conn.exec_driver_sql("PRAGMA page_count").scalar())
        store.engine.dispose()  # pooled connections pick the cap up at their next checkout

    def free(self, store) -> None:
        self.cap = 2**31 - 2

    def attach(self, store) -> None:
        def cap(dbapi_connection, *_args) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count={self.cap}")

        event.listen(store.engine, "checkout", cap)


@pytest.fixture(params=["tmpfs", "page-cap"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, TmpfsDisk | PageCapDisk]]:
    mount = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if request.param == "page-cap":
        yield mount, PageCapDisk()
        return
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("mounting a tmpfs needs root; the page-cap case covers the same path")
    try:
        yield mount, TmpfsDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _serve(ws) -> tuple[str, threading.Thread, object]:
    import uvicorn

    from dcloop.deploy import create_app

    app = create_app(ws, "pets@champion", token="s3cret", max_queue_delay_ms=2)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return url, thread, server


def test_a_full_disk_answers_503_and_the_server_recovers_losing_no_acknowledged_row(disk, caplog) -> None:
    from dcloop.deploy import promote, register_model_version
    from dcloop.workspace import init_workspace

    mount, device = disk
    ws = init_workspace(mount / "ws")
    register_model_version(ws, tiny_cnn_onnx(mount / "tiny.onnx"), name="pets", classes=CLASSES)
    promote(ws, "pets", version=1)
    if isinstance(device, PageCapDisk):
        device.attach(ws.store)
    url, thread, server = _serve(ws)
    acked, labelled, refused = [], [], []
    rng = np.random.default_rng(0)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:

            def predict() -> httpx.Response:
                r = http.post("/predict", json={"pixels": rng.integers(0, 256, (28, 28)).tolist()})
                if r.status_code == 200:
                    acked.append(r.json()["prediction_id"])
                return r

            def label(pid: str) -> httpx.Response:
                r = http.post("/feedback", json={"prediction_id": pid, "label": "dog"}, headers=TOKEN)
                if r.status_code == 200:
                    labelled.append(pid)
                return r

            for _ in range(20):
                assert predict().status_code == 200
            device.fill(ws.store)
            with caplog.at_level(logging.ERROR, logger="dcloop"):
                for _ in range(20_000):  # the WAL file's free pages take a few writes first
                    r = predict()
                    if r.status_code != 200:
                        refused.append(r)
                        if len(refused) == 3:
                            break
                    label(acked[-1])
                assert len(refused) == 3, "the disk never filled up"
                for i in range(20_000):  # a label is a small row: the last free bytes of a page take some
                    full_label = label(acked[i % len(acked)])
                    if full_label.status_code != 200:
                        break
            for r in refused:
                assert r.status_code == 503 and "out of disk space" in r.json()["error"]
                assert r.headers["Retry-After"] == "1"
            assert full_label.status_code == 503 and "out of disk space" in full_label.json()["error"]
            assert any("out of disk space" in rec.getMessage() for rec in caplog.records)

            device.free(ws.store)
            assert predict().status_code == 200
            assert label(acked[-1]).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    stored = {p.id for p in list_predictions(ws.store)}
    assert set(acked) <= stored
    assert set(labelled) <= {p.id for p in labelled_predictions(ws.store)}
    with ws.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    close_store(ws.store.url)
