"""The variants table on every store backend: one transaction per optimization, frozen records,
id prefixes, filters by run."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from dcloop.errors import NotFoundError, StoreError
from dcloop.store import DatasetRecord, RunRecord, Store
from dcloop.store import datasets as store_datasets
from dcloop.store import runs as store_runs
from dcloop.store.variants import VariantRecord, add_variants, get_variant, list_variants


def _parents(store: Store) -> str:
    now = datetime.now(UTC)
    store_datasets.add_dataset(
        store, DatasetRecord("d" * 64, "ds", now, "", ["cat", "dog"], {}, [1, 28, 28], {}, {})
    )
    store_runs.add_run(
        store, RunRecord("r" * 32, "train", "teacher", "d" * 64, "resnet-s", "finished", now, {}, {}, {}, "")
    )
    return "r" * 32


def _variant(variant_id: str, run_id: str, offset: int, method: str = "onnx") -> VariantRecord:
    return VariantRecord(
        id=variant_id,
        run_id=run_id,
        optimization_id="o" * 32,
        method=method,
        params={"opset": 17},
        metrics={"accuracy": 0.97, "recommended": offset == 0},
        onnx_path=f"/x/{variant_id}/model.onnx",
        onnx_sha256="0" * 64,
        created_at=datetime.now(UTC) + timedelta(seconds=offset),
    )


def test_variants_round_trip_on_every_backend(store_url: str) -> None:
    store = Store(store_url)
    try:
        run_id = _parents(store)
        records = [
            _variant("abcd0001" + "0" * 24, run_id, 0),
            _variant("abcd0002" + "0" * 24, run_id, 1, "int8"),
        ]
        add_variants(store, records)
        assert list_variants(store) == records and list_variants(store, run_id=run_id) == records
        assert list_variants(store, run_id="x" * 32) == []
        assert get_variant(store, "abcd0002") == records[1]
        assert get_variant(store, records[0].id).created_at.tzinfo is not None
        with pytest.raises(NotFoundError, match=r"prefix 'abcd' is ambiguous"):
            get_variant(store, "abcd")
        with pytest.raises(dataclasses.FrozenInstanceError):
            records[0].method = "x"  # type: ignore[misc]
    finally:
        store.close()


def test_a_failed_batch_stores_nothing(store_url: str) -> None:
    store = Store(store_url)
    try:
        run_id = _parents(store)
        good = _variant("e" * 32, run_id, 0)
        orphan = dataclasses.replace(_variant("f" * 32, run_id, 1), run_id="no-such-run")
        with pytest.raises(StoreError):
            add_variants(store, [good, orphan])
        assert list_variants(store) == []
    finally:
        store.close()
