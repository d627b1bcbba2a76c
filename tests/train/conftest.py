"""Training fixtures: small learnable data sets, in memory and in a workspace, and a fast recipe."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.store import DatasetRecord

torch.set_num_threads(2)


def blobs(n: int = 240, classes: int = 2, size: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise images where class k has a bright bar at its own height (flip-proof): learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 60, size=(n, 1, size, size)).astype(np.uint8)
    band = size // classes
    for k in range(classes):
        x[y == k, :, k * band + 1 : (k + 1) * band - 1, 2 : size - 2] += 180
    return x, y.astype(np.int64)


def in_memory(x: np.ndarray, y: np.ndarray, names: list[str]) -> PreparedDataset:
    return _prepared(x, y, names, id="f" * 64, name="blobs", shape=list(x.shape[1:]))


def _prepared(x: np.ndarray, y: np.ndarray, names: list[str], **record: Any) -> PreparedDataset:
    """A version not at rest (no folder), split 60/20/20 in a fixed order."""
    n = len(y)
    order = np.random.default_rng(1).permutation(n)
    splits = {
        "train": order[: n * 6 // 10],
        "val": order[n * 6 // 10 : n * 8 // 10],
        "test": order[n * 8 // 10 :],
    }
    fields: dict[str, Any] = {
        "created_at": datetime.now(UTC),
        "path": "",
        "counts": {},
        "source": {},
        "cleaning": {},
    }
    return PreparedDataset(
        record=DatasetRecord(classes=names, **fields, **record),
        x=x,
        y=y,
        splits=splits,
    )


@pytest.fixture
def blob_data() -> PreparedDataset:
    x, y = blobs()
    return in_memory(x, y, ["cat", "dog"])


@pytest.fixture
def fast_recipe() -> TrainConfig:
    """tiny-cnn, 3 epochs, small batches, no tracking server needed."""
    return TrainConfig(model="tiny-cnn", epochs=3, batch_size=32, lr=0.01, threads=2)


@pytest.fixture
def blob_workspace(workspace, tmp_path: Path):
    """A workspace holding a prepared version of the blob images (imported as .npz); MLflow off."""
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.workspace import open_workspace

    x, y = blobs(n=200, size=20)
    path = tmp_path / "blobs.npz"
    np.savez(path, x=x, y=y, classes=np.array(["cat", "dog"]))
    (workspace.root / "dcloop.yaml").write_text(
        "data:\n  image_size: 20\ntracking:\n  mlflow: false\n", encoding="utf-8"
    )
    ws = open_workspace(workspace.root, config.load(workspace.root / "dcloop.yaml"))
    import_source(ws, str(path), name="blobs")
    return ws


@pytest.fixture(scope="session")
def catdog_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 300-image Animal-MNIST cat/dog subset (150 per class) as an .npz source."""
    from dcloop.data import import_source, load_dataset
    from dcloop.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("full"))
    import_source(ws, "animal-mnist", classes=["cat", "dog"])
    data = load_dataset(ws)
    keep = np.concatenate([np.flatnonzero(data.y == k)[:150] for k in (0, 1)])
    path = tmp_path_factory.mktemp("subset") / "catdog300.npz"
    np.savez(path, x=np.asarray(data.x[keep]), y=data.y[keep], classes=np.array(data.classes))
    return path


WORDS = {
    "cat": "purr whisker mouse nap yarn meow claw tabby",
    "dog": "bark fetch bone walk leash woof tail puppy",
    "cow": "moo milk grass barn field hay calf udder",
}
FILLER = ["the", "a", "and", "of", "on", "in", "with", "near", "very", "quite", "some"]


def texts(n: int = 60, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """Short texts whose class shows in its own words among filler, of varied lengths: learnable."""
    rng = np.random.default_rng(seed)
    names = list(WORDS)
    y = np.arange(n) % len(names)
    out = []
    for i, label in enumerate(y):
        own = WORDS[names[label]].split()
        words = [
            str(rng.choice(own if rng.random() < 0.5 else FILLER)) for _ in range(int(rng.integers(3, 14)))
        ]
        out.append(f"{' '.join(words)} {own[i % len(own)]} number {i}")
    return out, y.astype(np.int64), names


def text_in_memory(n: int = 60, seed: int = 0) -> PreparedDataset:
    """A text version not at rest (no folder): its tokens are encoded in memory."""
    x, y, names = texts(n, seed)
    return _prepared(
        np.array(x, dtype=object), y, names, id="e" * 64, name="words", shape=[], modality="text"
    )


@pytest.fixture
def text_data() -> PreparedDataset:
    return text_in_memory()


@pytest.fixture
def text_workspace(workspace, tmp_path: Path):
    """A workspace holding a text version imported from a CSV of 90 texts; MLflow off."""
    import csv

    from dcloop import config
    from dcloop.data import import_source
    from dcloop.workspace import open_workspace

    x, y, names = texts(90)
    path = tmp_path / "words.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([t, names[k]] for t, k in zip(x, y, strict=True))
    (workspace.root / "dcloop.yaml").write_text("tracking:\n  mlflow: false\n", encoding="utf-8")
    ws = open_workspace(workspace.root, config.load(workspace.root / "dcloop.yaml"))
    import_source(ws, str(path), name="words")
    return ws
