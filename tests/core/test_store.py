"""One store test suite, run on every backend (SQLite file and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcloop.errors import NotFoundError, StoreError
from dcloop.store import DatasetRecord, RunRecord, Store, _migrations, open_store
from dcloop.store import datasets as store_datasets
from dcloop.store import runs as store_runs


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
    store_datasets.add_dataset(store, record)
    again = store_datasets.add_dataset(store, dataclasses.replace(record, name="other"))
    assert again.name == "cats"  # content-addressed: the stored version wins
    assert len(store_datasets.list_datasets(store)) == 1
    got = store_datasets.get_dataset(store, "aaaa")
    assert got.classes == ["cat", "dog"] and got.counts == record.counts
    assert store_datasets.get_dataset(store, "cats").id == record.id
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.name = "x"  # type: ignore[misc]


def test_unknown_and_ambiguous_refs(store_url: str) -> None:
    store = Store(store_url)
    store_datasets.add_dataset(store, _dataset("abcd1" + "0" * 59))
    store_datasets.add_dataset(store, _dataset("abcd2" + "0" * 59, name="b"))
    with pytest.raises(NotFoundError, match="ambiguous"):
        store_datasets.get_dataset(store, "abcd")
    with pytest.raises(NotFoundError, match="No data set version 'zzzz'"):
        store_datasets.get_dataset(store, "zzzz")
    with pytest.raises(NotFoundError, match="No run"):
        store_runs.get_run(store, "nope")


def test_runs_epochs_and_failed_transaction_leaves_nothing(store_url: str) -> None:
    store = Store(store_url)
    store_datasets.add_dataset(store, _dataset())
    store_runs.add_run(store, _run("r1", "a" * 64))
    store_runs.log_epoch(store, "r1", 1, {"loss": 1.0}, 2.0)
    store_runs.log_epoch(store, "r1", 1, {"loss": 0.5}, 2.0)  # a resumed epoch replaces the first
    store_runs.log_epoch(store, "r1", 2, {"loss": 0.25}, 2.0)
    assert [e.metrics["loss"] for e in store_runs.list_epochs(store, "r1")] == [0.5, 0.25]
    done = store_runs.update_run(store, "r1", status="finished", metrics={"accuracy": 0.9})
    assert done.finished_at is not None and done.metrics == {"accuracy": 0.9}
    # a run pointing at a missing data set version is refused, and nothing is written
    with pytest.raises(StoreError, match="refused"):
        store_runs.add_run(store, _run("r2", "f" * 64))
    assert [r.id for r in store_runs.list_runs(store)] == ["r1"]


def test_latest_is_the_newest_run_of_any_kind(store_url: str) -> None:
    store = Store(store_url)
    with pytest.raises(NotFoundError, match="No runs in this workspace yet, so no 'latest'"):
        store_runs.get_run(store, "latest")
    store_datasets.add_dataset(store, _dataset())
    start = datetime.now(UTC)
    for i, (run_id, kind) in enumerate([("r1", "train"), ("r2", "trial"), ("r3", "train")]):
        run = dataclasses.replace(_run(run_id, "a" * 64), kind=kind, created_at=start + timedelta(seconds=i))
        store_runs.add_run(store, run)
        assert store_runs.get_run(store, "latest").id == run_id
    store_runs.update_run(store, "r1", status="finished")  # finishing an older run does not make it newest
    assert store_runs.get_run(store, "latest").id == "r3"


def test_concurrent_writers(store_url: str) -> None:
    store = Store(store_url)
    store_datasets.add_dataset(store, _dataset())
    store_runs.add_run(store, _run("r1", "a" * 64))

    def write(start: int) -> None:
        for epoch in range(start, start + 10):
            store_runs.log_epoch(store, "r1", epoch, {"e": float(epoch)}, 0.1)

    threads = [threading.Thread(target=write, args=(i * 10,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.epoch for e in store_runs.list_epochs(store, "r1")] == list(range(40))


def test_reopen_keeps_data_and_schema_version(store_url: str) -> None:
    first = Store(store_url)
    store_datasets.add_dataset(first, _dataset())
    first.close()
    second = Store(store_url)
    assert second.schema_version == _migrations.head()
    assert len(store_datasets.list_datasets(second)) == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store(url).close()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("INSERT INTO schema_version VALUES (:v, :t)"),
            {"v": _migrations.head() + 5, "t": datetime.now(UTC)},
        )
    engine.dispose()
    with pytest.raises(StoreError, match="newer than this dcloop knows"):
        Store(url)


def test_unknown_revision_is_refused(store_url: str) -> None:
    """A database a newer dcloop migrated (a revision this one does not ship) is refused, not touched."""
    Store(store_url).close()
    engine = sqlalchemy.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"UPDATE {_migrations.VERSION_TABLE} SET version_num = 'f00d'"))
    engine.dispose()
    with pytest.raises(StoreError, match=f"newer than this dcloop knows \\({_migrations.head()}\\)"):
        Store(store_url)


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"


def test_every_time_column_is_utc() -> None:
    """Each datetime column goes through the one UTC type, so no table hands back naive times."""
    from dcloop.store._schema import metadata
    from dcloop.store._types import UTCDateTime

    times = [
        c for t in metadata.tables.values() for c in t.c if isinstance(_impl(c.type), sqlalchemy.DateTime)
    ]
    assert times
    bare = [f"{c.table.name}.{c.name}" for c in times if not isinstance(c.type, UTCDateTime)]
    assert bare == []


def _impl(column_type: Any) -> Any:
    return getattr(column_type, "impl", column_type)


_ZONES = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_TIMES = st.datetimes(datetime(1971, 1, 2), datetime(2200, 1, 1), timezones=_ZONES | st.none())


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(created=_TIMES, finished=_TIMES)
def test_times_come_back_as_the_same_utc_instant(
    store_url: str, created: datetime, finished: datetime
) -> None:
    """Any zone in, the same instant out, in UTC, on every backend; a naive time is taken as UTC."""
    store = open_store(store_url)
    if not store_datasets.list_datasets(store):
        store_datasets.add_dataset(store, _dataset())
    run_id = uuid.uuid4().hex
    store_runs.add_run(store, dataclasses.replace(_run(run_id, "a" * 64), created_at=created))
    store_runs.update_run(store, run_id, finished_at=finished)
    got = store_runs.get_run(store, run_id)
    for sent, back in ((created, got.created_at), (finished, got.finished_at)):
        assert back is not None and back.tzinfo is UTC
        assert back == (sent if sent.tzinfo is not None else sent.replace(tzinfo=UTC))
    newest = store_runs.unfinished_runs(store)[0]  # ordering compares instants, not wall-clock text
    assert newest.created_at == max(r.created_at for r in store_runs.list_runs(store))
