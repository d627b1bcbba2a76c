"""What the loop tests share: the test workspace config, and how to make and edit such a workspace."""

from __future__ import annotations

from pathlib import Path

import yaml

CLASSES = ["bird", "elephant", "giraffe"]
PER_CLASS = 300  # of each class: 180 become the source, 120 the unseen future traffic
SOURCE_SHARE = 0.6

TEST_CONFIG = {
    "tracking": {"mlflow": False},
    "train": {
        "model": "seed-cnn",
        "epochs": 3,
        "batch_size": 32,
        "threads": 1,
        "lr": 0.002,
        "augment": {"enabled": False},
    },
    "optimize": {"methods": ["onnx"], "latency_runs": 10, "throughput_batches": 1},
    "monitor": {"min_samples": 30, "reference_size": 300, "min_labels": 20, "min_accuracy": 0.6},
    "gate": {"min_feedback_labels": 20},
    "loop": {"model": "animals", "optimize_methods": ["onnx"], "retrain_min_labels": 20},
}


def make_workspace(folder: Path, config: dict | None = None):
    """A workspace in ``folder`` with TEST_CONFIG (plus ``config`` sections merged over it)."""
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(folder)
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in TEST_CONFIG.items()}
    for section, values in (config or {}).items():
        merged[section] = {**merged.get(section, {}), **values}
    (ws.root / "dcloop.yaml").write_text(yaml.safe_dump(merged), encoding="utf-8")
    return open_workspace(ws.root)


def set_config(ws, section: str, **values):
    """Rewrite one section of the workspace's dcloop.yaml and reopen it."""
    from dcloop.workspace import open_workspace

    path = ws.root / "dcloop.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw[section] = {**raw.get(section, {}), **values}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return open_workspace(ws.root)
