"""Preparing versions: Animal-MNIST, idempotence, config changes, atomic writes, extending a version."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from dcloop.data import extend_dataset, import_source, list_datasets, load_dataset, prepare_dataset
from dcloop.data._sources import ANIMAL_CLASSES
from dcloop.errors import DataError
from dcloop.workspace import open_workspace


@pytest.fixture
def cats_dogs(workspace):
    return import_source(workspace, "animal-mnist", classes=["cat", "dog"])


def test_animal_mnist_cat_vs_dog(workspace, cats_dogs) -> None:
    assert cats_dogs.name == "animal-mnist-cat-dog"
    assert cats_dogs.classes == ["cat", "dog"] and cats_dogs.shape == [1, 28, 28]
    data = load_dataset(workspace)
    assert data.id == cats_dogs.id
    assert isinstance(data.x, np.memmap) and data.x.dtype == np.uint8 and data.x.shape[1:] == (1, 28, 28)
    total = len(data.y)
    assert total + cats_dogs.cleaning["counts"]["duplicate"] == 2000  # 1,000 per class, duplicates collapsed
    assert sorted(np.concatenate(list(data.splits.values())).tolist()) == list(range(total))
    for split, share in (("test", 0.2), ("val", 0.8 * 0.1)):
        for label in (0, 1):
            n = int((data.y == label).sum())
            assert abs(int((data.y[data.splits[split]] == label).sum()) - n * share) <= 1
    flat = np.asarray(data.x).reshape(total, -1)
    assert len({row.tobytes() for row in flat}) == total  # no duplicates left, so test never leaks


def test_classes_by_index_give_the_same_version(workspace, cats_dogs) -> None:
    again = import_source(workspace, "animal-mnist", classes="4, 2")
    assert again.id == cats_dogs.id
    assert again.created_at == cats_dogs.created_at  # the stored record, not a new row
    assert len(list_datasets(workspace)) == 1


def test_prepare_is_idempotent_and_follows_config(workspace, cats_dogs) -> None:
    assert prepare_dataset(workspace).id == cats_dogs.id
    assert prepare_dataset(workspace, "animal-mnist-cat-dog").id == cats_dogs.id
    assert len(list_datasets(workspace)) == 1
    (workspace.root / "dcloop.yaml").write_text("data:\n  image_size: 14\n  seed: 3\n", encoding="utf-8")
    smaller = prepare_dataset(open_workspace(workspace.root))
    assert smaller.id != cats_dogs.id and smaller.shape == [1, 14, 14]
    assert smaller.source["config"]["image_size"] == 14
    assert [r.id for r in list_datasets(workspace)] == [cats_dogs.id, smaller.id]


def test_version_folder_holds_arrays_and_manifest(workspace, cats_dogs) -> None:
    folder = workspace.datasets_dir / cats_dogs.id
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "splits.npz", "x.npy", "y.npy"]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["hash"]["value"] == cats_dogs.id
    assert manifest["classes"] == ["cat", "dog"]
    assert manifest["source"]["kind"] == "animal-mnist"
    assert len(manifest["source"]["files"]) == 2
    assert manifest["cleaning"]["counts"] == cats_dogs.cleaning["counts"]
    assert not [p for p in workspace.datasets_dir.iterdir() if p.name.startswith(".")]


def test_full_animal_mnist_has_ten_classes(workspace) -> None:
    record = import_source(workspace, "animal-mnist")
    assert record.classes == ANIMAL_CLASSES
    assert record.cleaning["input"] == 10_000
    assert record.cleaning["counts"]["conflict"] == 0


def test_a_failed_write_leaves_nothing(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(DataError, match=r"Cannot write data set version to .*: No space left on device"):
        import_source(workspace, "animal-mnist", classes="cat,dog")
    assert list(workspace.datasets_dir.iterdir()) == []
    assert list_datasets(workspace) == []


def test_extend_dataset_adds_cleaned_examples_and_freezes_test(workspace, cats_dogs) -> None:
    base = load_dataset(workspace)
    rng = np.random.default_rng(0)
    fresh = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    images = np.concatenate([fresh, fresh[:2], np.asarray(base.x[:3, 0]), np.zeros((1, 28, 28), np.uint8)])
    labels = np.concatenate([np.arange(30) % 2, np.arange(2) % 2, 1 - base.y[:3], [0]])
    origin = {"model": "m1", "since": datetime(2026, 1, 2, tzinfo=UTC)}
    record = extend_dataset(workspace, cats_dogs.id, images, labels, origin)
    assert record.parent_id == cats_dogs.id and record.source["kind"] == "feedback"
    assert record.source["origin"] == {"model": "m1", "since": "2026-01-02 00:00:00+00:00"}
    added = record.cleaning["added"]["counts"]
    assert (added["duplicate"], added["conflict"], added["blank"]) == (2, 3, 1)
    extended = load_dataset(workspace, cats_dogs.name)  # the name now means the newest version
    assert extended.id == record.id
    assert np.array_equal(extended.splits["test"], base.splits["test"])
    assert np.array_equal(extended.x[base.splits["test"]], base.x[base.splits["test"]])
    new = np.arange(len(base.y), len(extended.y))
    assert len(new) == 30
    assert set(new.tolist()) <= set(extended.splits["train"].tolist()) | set(extended.splits["val"].tolist())
    assert (
        len([i for i in new if i in set(extended.splits["val"].tolist())]) == 4
    )  # round(15 * 0.1) per class


def test_extend_dataset_rejects_wrong_shapes_and_labels(workspace, cats_dogs) -> None:
    with pytest.raises(DataError, match=r"images must be 28x28 like the base version. Got \(14, 14\)"):
        extend_dataset(workspace, cats_dogs.id, np.zeros((2, 14, 14), np.uint8), np.array([0, 1]), {})
    with pytest.raises(DataError, match=r"labels must lie in 0..1. Got 0..5"):
        extend_dataset(workspace, cats_dogs.id, np.ones((2, 28, 28), np.uint8), np.array([0, 5]), {})
    with pytest.raises(DataError, match=r"labels must be 2 integer class indices"):
        extend_dataset(workspace, cats_dogs.id, np.ones((2, 28, 28), np.uint8), np.array([0.0, 1.0]), {})
