"""One store test suite, run on every backend (SQLite file and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy

from dcloop.errors import NotFoundError, StoreError
from dcloop.store import DatasetRecord, RunRecord, Store, _migrations


def _dataset(id_: str = "a" * 64, name: str = "cats") -> DatasetRecord:
    return DatasetRecord(
        id=id_,
        name=name,
        created_at=datetime.now(UTC),
        path="/tmp/x",
        classes=["cat", "dog"],
        counts={"train": {"cat": 3, "dog": 4}},
        shape=[1, 28, 28],
        source={"kind": "npz"},
        cleaning={"duplicates": 1},
    )


def _run(run_id: str, dataset_id: str) -> RunRecord:
    return RunRecord(
        id=run_id,
        kind="train",
        name="r",
        dataset_id=dataset_id,
        model="tiny-cnn",
        status="running",
        created_at=datetime.now(UTC),
        config={"lr": 0.1},
        lineage={"seed": 0},
        metrics={},
        path="/tmp/r",
    )


def test_dataset_round_trip_and_idempotent_add(store_url: str) -> None:
    store = Store(store_url)
    record = _dataset()
    store.add_dataset(record)
    again = store.add_dataset(dataclasses.replace(record, name="other"))
    assert again.name == "cats"  # content-addressed: the stored version wins
    assert len(store.list_datasets()) == 1
    got = store.get_dataset("aaaa")
    assert got.classes == ["cat", "dog"] and got.counts == record.counts
    assert store.get_dataset("cats").id == record.id
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.name = "x"  # type: ignore[misc]


def test_unknown_and_ambiguous_refs(store_url: str) -> None:
    store = Store(store_url)
    store.add_dataset(_dataset("abcd1" + "0" * 59))
    store.add_dataset(_dataset("abcd2" + "0" * 59, name="b"))
    with pytest.raises(NotFoundError, match="ambiguous"):
        store.get_dataset("abcd")
    with pytest.raises(NotFoundError, match="No data set version 'zzzz'"):
        store.get_dataset("zzzz")
    with pytest.raises(NotFoundError, match="No run"):
        store.get_run("nope")


def test_runs_epochs_and_failed_transaction_leaves_nothing(store_url: str) -> None:
    store = Store(store_url)
    store.add_dataset(_dataset())
    store.add_run(_run("r1", "a" * 64))
    store.log_epoch("r1", 1, {"loss": 1.0}, 2.0)
    store.log_epoch("r1", 1, {"loss": 0.5}, 2.0)  # a resumed epoch replaces the first
    store.log_epoch("r1", 2, {"loss": 0.25}, 2.0)
    assert [e.metrics["loss"] for e in store.list_epochs("r1")] == [0.5, 0.25]
    done = store.update_run("r1", status="finished", metrics={"accuracy": 0.9})
    assert done.finished_at is not None and done.metrics == {"accuracy": 0.9}
    # a run pointing at a missing data set version is refused, and nothing is written
    with pytest.raises(StoreError, match="refused"):
        store.add_run(_run("r2", "f" * 64))
    assert [r.id for r in store.list_runs()] == ["r1"]


def test_concurrent_writers(store_url: str) -> None:
    store = Store(store_url)
    store.add_dataset(_dataset())
    store.add_run(_run("r1", "a" * 64))

    def write(start: int) -> None:
        for epoch in range(start, start + 10):
            store.log_epoch("r1", epoch, {"e": float(epoch)}, 0.1)

    threads = [threading.Thread(target=write, args=(i * 10,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.epoch for e in store.list_epochs("r1")] == list(range(40))


def test_reopen_keeps_data_and_schema_version(store_url: str) -> None:
    first = Store(store_url)
    first.add_dataset(_dataset())
    first.close()
    second = Store(store_url)
    assert second.schema_version == len(_migrations.MIGRATIONS)
    assert len(second.list_datasets()) == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store(url).close()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("INSERT INTO schema_version VALUES (:v, :t)"),
            {"v": len(_migrations.MIGRATIONS) + 5, "t": datetime.now(UTC)},
        )
    engine.dispose()
    with pytest.raises(StoreError, match="newer than this dcloop knows"):
        Store(url)


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"


def test_upgrade_from_every_older_schema_keeps_data(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store written at schema version 1 (foundation) opens under the current code, data intact."""
    all_migrations = list(_migrations.MIGRATIONS)
    monkeypatch.setattr(_migrations, "MIGRATIONS", all_migrations[:1])
    old = Store(store_url)
    assert old.schema_version == 1
    old.add_dataset(_dataset())
    old.add_run(_run("r1", "a" * 64))
    old.close()
    monkeypatch.setattr(_migrations, "MIGRATIONS", all_migrations)
    new = Store(store_url)
    assert new.schema_version == len(all_migrations)
    assert new.get_run("r1").dataset_id == "a" * 64
    assert [d.name for d in new.list_datasets()] == ["cats"]
    with new.engine.connect() as conn:
        versions = conn.execute(sqlalchemy.text("SELECT version FROM schema_version ORDER BY version"))
        assert [v for (v,) in versions] == list(range(1, len(all_migrations) + 1))


def test_opens_a_database_file_written_by_a_released_version(tmp_path: Path) -> None:
    """Database files committed under fixtures/ were written by earlier dcloop versions; each must open."""
    fixtures = sorted((Path(__file__).parent / "fixtures").glob("store-v*.db"))
    assert fixtures
    for fixture in fixtures:
        copy = tmp_path / fixture.name
        copy.write_bytes(fixture.read_bytes())
        store = Store(f"sqlite:///{copy}")
        assert store.schema_version == len(_migrations.MIGRATIONS)
        assert store.get_run("r1").status == "running"
        assert [e.metrics for e in store.list_epochs("r1")] == [{"loss": 0.5}]
        store.close()
