"""Recorded sources and versions in the store, on every backend (SQLite file and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dcloop.errors import NotFoundError
from dcloop.store import DatasetRecord, open_store
from dcloop.store import datasets as store_data


def _record(version_id: str, name: str) -> DatasetRecord:
    return DatasetRecord(
        id=version_id,
        name=name,
        created_at=datetime.now(UTC),
        path=f"/tmp/{version_id}",
        classes=["cat", "dog"],
        counts={"train": {"cat": 1, "dog": 1}, "val": {"cat": 0, "dog": 0}, "test": {"cat": 1, "dog": 0}},
        shape=[1, 28, 28],
        source={"kind": "npz"},
        cleaning={"counts": {"blank": 1}},
    )


def test_record_version_is_idempotent_and_keeps_the_source(store_url: str) -> None:
    store = open_store(store_url)
    first = store_data.record_version(
        store, _record("a" * 64, "pets"), "folder", "/data/pets", ["cat", "dog"]
    )
    again = store_data.record_version(
        store, _record("a" * 64, "pets"), "folder", "/data/pets", ["cat", "dog"]
    )
    assert again == first and len(store_data.list_datasets(store)) == 1
    assert store_data.get_dataset(store, "pets").id == "a" * 64
    source = store_data.get_source(store)
    assert (source.name, source.kind, source.location, source.classes) == (
        "pets",
        "folder",
        "/data/pets",
        ["cat", "dog"],
    )
    assert source.version_id == "a" * 64
    store_data.record_version(store, _record("b" * 64, "mnist"), "idx", "/data/mnist", None)
    assert store_data.get_source(store).name == "mnist"  # the latest imported
    assert [s.name for s in store_data.list_sources(store)] == ["mnist", "pets"]
    with pytest.raises(NotFoundError, match=r"No data source named 'cats'. Recorded: mnist, pets"):
        store_data.get_source(store, "cats")
