"""Run queries of `--resume` and `dcloop runs list`, on every store backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dcloop.store import DatasetRecord, RunRecord, Store
from dcloop.store import datasets as store_datasets
from dcloop.store import runs as store_runs
from dcloop.store.runs import recent_runs, unfinished_runs


def test_unfinished_and_recent_runs(store_url: str) -> None:
    store = Store(store_url)
    try:
        now = datetime.now(UTC)
        store_datasets.add_dataset(
            store,
            DatasetRecord(
                id="d" * 64,
                name="d",
                created_at=now,
                path="",
                classes=["a", "b"],
                counts={},
                shape=[1, 2, 2],
                source={},
                cleaning={},
            ),
        )
        statuses = ["finished", "failed", "running", "stopped", "finished"]
        for index, status in enumerate(statuses):
            store_runs.add_run(
                store,
                RunRecord(
                    id=f"run{index}",
                    kind="trial" if index == 3 else "train",
                    name=f"r{index}",
                    dataset_id="d" * 64,
                    model="tiny-cnn",
                    status=status,
                    created_at=now + timedelta(seconds=index),
                    config={},
                    lineage={},
                    metrics={},
                    path="",
                ),
            )
        assert [r.id for r in unfinished_runs(store)] == ["run3", "run2", "run1"]
        assert [r.id for r in unfinished_runs(store, kind="train")] == ["run2", "run1"]
        assert [r.id for r in recent_runs(store, limit=2)] == ["run4", "run3"]
        assert [r.id for r in recent_runs(store, kind="trial")] == ["run3"]
    finally:
        store.close()
