"""Fixtures of the dashboard tests: one workspace that has been through a loop turn on real
Animal-MNIST images (a champion, a challenger, served predictions and labels), the dashboard and the
model server over real sockets, and the system Chromium driven by Playwright."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "loop"))  # loopkit: the loop tests' workspace
from loopkit import CLASSES, PER_CLASS, SOURCE_SHARE, make_workspace
from uikit import CHROMIUM, LABELLED, TOKEN, TRAFFIC, serving


def _world(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A source .npz of three classes and unseen images of them (as the loop tests split them)."""
    from dcloop.data._intake import SOURCES

    intake = SOURCES.get("animal-mnist")(None, CLASSES, 28, "grayscale")
    rng = np.random.default_rng(0)
    past, future = [], []
    for index in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(intake.y == index))[:PER_CLASS]
        cut = int(PER_CLASS * SOURCE_SHARE)
        past.append(members[:cut])
        future.append(members[cut:])
    keep, rest = np.sort(np.concatenate(past)), rng.permutation(np.concatenate(future))
    path = folder / "animals.npz"
    np.savez(path, x=intake.x[keep], y=intake.y[keep], classes=np.array(CLASSES))
    return path, intake.x[rest], intake.y[rest]


@pytest.fixture(scope="session")
def loop_ws(tmp_path_factory: pytest.TempPathFactory):
    """A workspace after one full loop turn, 180 served predictions (90 labelled) and a challenger."""
    import torch

    from dcloop._demo_traffic import TrafficClient
    from dcloop.data import import_source
    from dcloop.deploy import register_model_version
    from dcloop.loop import run_loop

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("ui")
    source, x, y = _world(folder)
    ws = make_workspace(folder / "ws")
    import_source(ws, str(source), name="animals")
    turn = run_loop(ws)
    client = TrafficClient(ws, "animals@champion").open()
    try:
        _, ids, _ = client.predict(x[:TRAFFIC])
        client.label(ids[:LABELLED], y[:LABELLED])
    finally:
        client.close()
    register_model_version(ws, turn.outputs["variant"], name="animals", alias="challenger")
    return ws


@pytest.fixture(scope="session")
def model_server(loop_ws):
    """The model server of the workspace (animals@champion) over a real socket; yields its base URL."""
    from dcloop.deploy import create_app

    with serving(create_app(loop_ws, "animals@champion", token=TOKEN)) as url:
        yield url


@pytest.fixture(scope="session")
def dashboard(loop_ws, model_server):
    """The dashboard with the token (changes allowed once confirmed) over a real socket."""
    from dcloop.ui import create_app

    with serving(create_app(loop_ws, token=TOKEN, metrics_url=f"{model_server}/metrics")) as url:
        yield url


@pytest.fixture(scope="session")
def readonly_dashboard(loop_ws, model_server):
    from dcloop.ui import create_app

    with serving(create_app(loop_ws, token=None, metrics_url=f"{model_server}/metrics")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("needs the system Chromium (/usr/bin/chromium; `make system-packages` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()
