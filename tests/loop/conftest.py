"""Fixtures of the loop tests: a small real Animal-MNIST source, and a workspace whose champion is a tiny
CNN trained on it, copied fresh for each test (training it once per test run keeps the suite fast)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from loopkit import CLASSES, PER_CLASS, SOURCE_SHARE, make_workspace


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The source .npz (past images) and the future images (x, y) of three Animal-MNIST classes."""
    import torch

    from dcloop.data._intake import SOURCES

    torch.set_num_threads(1)
    intake = SOURCES.get("animal-mnist")(None, CLASSES, 28, "grayscale")
    rng = np.random.default_rng(0)
    past, future = [], []
    for index in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(intake.y == index))[:PER_CLASS]
        cut = int(PER_CLASS * SOURCE_SHARE)
        past.append(members[:cut])
        future.append(members[cut:])
    keep, rest = np.sort(np.concatenate(past)), rng.permutation(np.concatenate(future))
    path = tmp_path_factory.mktemp("source") / "animals.npz"
    np.savez(path, x=intake.x[keep], y=intake.y[keep], classes=np.array(CLASSES))
    return {"source": path, "x": intake.x[rest], "y": intake.y[rest]}


@pytest.fixture(scope="session")
def champion_template(tmp_path_factory: pytest.TempPathFactory, world: dict) -> Path:
    """A workspace with the source imported and one loop turn paused after its gate: animals@1 is champion."""
    from dcloop.loop import run_loop
    from dcloop.store import close_store

    folder = tmp_path_factory.mktemp("template") / "ws"
    ws = make_workspace(folder)
    from dcloop.data import import_source

    import_source(ws, str(world["source"]), name="animals")
    turn = run_loop(ws, stop_after="gate")
    assert turn.outputs["champion"] == "animals@1"
    assert close_store(ws.store_url)  # checkpoint the SQLite WAL before the folder is copied
    return folder


@pytest.fixture
def champion_ws(champion_template: Path, tmp_path: Path):
    """A private copy of the champion workspace (its records point at the template's read-only files)."""
    from dcloop.workspace import open_workspace

    target = tmp_path / "ws"
    shutil.copytree(champion_template, target)
    return open_workspace(target)


@pytest.fixture
def traffic(champion_ws):
    """A client of the real server app serving animals@champion, closed after the test."""
    from dcloop._demo_traffic import TrafficClient

    client = TrafficClient(champion_ws, "animals@champion").open()
    yield client
    client.close()
