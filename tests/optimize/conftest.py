"""Optimization fixtures: a workspace on a real 600-image Animal-MNIST cat/dog subset, a trained
tiny-cnn run in it, and fast optimize/tune settings (1-epoch trials, short timing loops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(2)

FAST_CONFIG = """\
tracking:
  mlflow: false
train:
  model: tiny-cnn
  width: 8
  epochs: 3
  batch_size: 64
  lr: 0.01
  threads: 2
optimize:
  threads: 1
  calibration_size: 128
  finetune_epochs: 1
  distill_epochs: 1
  student: tiny-cnn
  student_width: 4
  latency_runs: 20
  throughput_batches: 2
tune:
  epochs: 1
  heartbeat_s: 1
  space:
    lr: {type: float, low: 0.001, high: 0.05, log: true}
    batch_size: {type: categorical, choices: [32, 64]}
"""


@pytest.fixture(scope="session")
def catdog_ws(tmp_path_factory: pytest.TempPathFactory):
    """A workspace (fast config) holding a prepared 600-image real cat/dog subset."""
    from dcloop import config
    from dcloop.data import import_source, load_dataset
    from dcloop.workspace import init_workspace, open_workspace

    full = init_workspace(tmp_path_factory.mktemp("full"))
    import_source(full, "animal-mnist", classes=["cat", "dog"])
    data = load_dataset(full)
    keep = np.concatenate([np.flatnonzero(data.y == k)[:300] for k in (0, 1)])
    npz = tmp_path_factory.mktemp("subset") / "catdog600.npz"
    np.savez(npz, x=np.asarray(data.x[keep]), y=data.y[keep], classes=np.array(data.classes))

    ws = init_workspace(tmp_path_factory.mktemp("ws"))
    (ws.root / "dcloop.yaml").write_text(FAST_CONFIG, encoding="utf-8")
    ws = open_workspace(ws.root, config.load(ws.root / "dcloop.yaml"))
    import_source(ws, str(npz), name="catdog600")
    return ws


@pytest.fixture(scope="session")
def trained_run(catdog_ws):
    """A finished tiny-cnn run on the subset."""
    from dcloop.train import train

    return train(catdog_ws, catdog_ws.config.train, name="teacher")


@pytest.fixture
def ws_with(catdog_ws):
    """Open the shared workspace with some config sections changed: ws_with(optimize={...})."""
    from dcloop import config
    from dcloop.workspace import open_workspace

    def make(**sections: dict) -> object:
        cfg = catdog_ws.config
        for section, overrides in sections.items():
            cfg = config.with_overrides(cfg, section, overrides)
        return open_workspace(Path(catdog_ws.root), cfg)

    return make
