"""Schema migrations: real databases of every earlier version open under this code with their data.

``fixtures/store-vN.db`` is a SQLite file written by dcloop at schema version N (v5 by the last
release before Alembic; each later one by the code of its version). On PostgreSQL the same rows are
loaded into a database brought to version N by the migrations (for N <= 5 without Alembic's table,
as dcloop 0.1 left it), then opened by the current code.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dcloop.store import Store, _migrations
from dcloop.store import datasets as store_datasets
from dcloop.store import runs as store_runs
from dcloop.store._schema import metadata

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY = 5  # the newest schema version written before dcloop used Alembic
VERSION_TABLES = {_migrations.VERSION_TABLE, "schema_version"}


def _fixtures() -> list[tuple[int, Path]]:
    found = sorted((int(p.stem.removeprefix("store-v")), p) for p in FIXTURES.glob("store-v*.db"))
    assert found and found[0][0] == LEGACY
    return found


def _check_v5(store: Store) -> None:
    """What the v5 file holds: one data set version, one running run with one epoch."""
    [dataset] = store_datasets.list_datasets(store)
    assert dataset.name == "cats" and dataset.counts == {"train": {"cat": 3, "dog": 4}}
    assert dataset.created_at == datetime(2026, 11, 29, 12, 20, 56, 355900, tzinfo=UTC)
    run = store_runs.get_run(store, "r1")
    assert run.status == "running" and run.config == {"lr": 0.1} and run.dataset_id == dataset.id
    assert [e.metrics for e in store_runs.list_epochs(store, "r1")] == [{"loss": 0.5}]


def _check_v6(store: Store) -> None:
    """What the v6 file adds: a row in every table, written through the store API of v6."""
    from dcloop.store import predictions, registry, retention, turns, variants

    assert store_datasets.get_source(store, "cats").location == "/data/cats.npz"
    assert [v.id for v in variants.list_variants(store, run_id="r1")] == ["v1"]
    assert registry.aliases(store, "cats") == {"champion": 1}
    assert [m.kind for m in registry.alias_moves(store, "cats")] == ["set"]
    assert registry.get_version(store, "cats", 1).sha256 == "c" * 64
    [kept] = predictions.list_predictions(store, model_name="cats")
    assert (kept.pred_label, kept.label, kept.label_source) == ("cat", "cat", "fixture")
    assert kept.created_at.tzinfo is UTC and kept.labelled_at is not None
    [window] = retention.prediction_windows(store, model_name="cats")
    assert window.predictions == 2 and window.predicted_classes == {"dog": 1, "cat": 1}
    [turn] = turns.list_turns(store)
    assert turn.status == "paused" and [s.step for s in turn.steps] == ["prepare"]


def _check_v7(store: Store) -> None:
    """A version stored before data sets had a modality reads as an image version; text ones add beside it."""
    [dataset] = store_datasets.list_datasets(store)
    assert dataset.modality == "image" and dataset.shape == [1, 28, 28]
    text = dataclasses.replace(dataset, id="t" * 64, name="notes", shape=[], modality="text")
    store_datasets.add_dataset(store, text)
    assert store_datasets.get_dataset(store, "notes").modality == "text"
    assert store_datasets.get_dataset(store, "cats").modality == "image"


CHECKS: dict[int, Callable[[Store], None]] = {5: _check_v5, 6: _check_v6, 7: _check_v7}


def _postgres_copy(version: int, fixture: Path, url: str) -> None:
    """A PostgreSQL database at ``version`` holding the fixture's rows, as that version left it."""
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        _migrations.upgrade(conn, url, to=version)
        if version <= LEGACY:
            conn.execute(sqlalchemy.text(f"DROP TABLE {_migrations.VERSION_TABLE}"))
        target = sqlalchemy.MetaData()
        target.reflect(conn)
        source_engine = sqlalchemy.create_engine(f"sqlite:///{fixture}")
        source = sqlalchemy.MetaData()
        source.reflect(source_engine)
        with source_engine.connect() as read:
            for table in source.sorted_tables:
                if table.name in VERSION_TABLES:
                    continue
                rows = [_utc(dict(r)) for r in read.execute(table.select()).mappings()]
                if rows:
                    conn.execute(target.tables[table.name].insert(), rows)
        source_engine.dispose()
    engine.dispose()


def _utc(row: dict[str, Any]) -> dict[str, Any]:
    """SQLite keeps naive UTC times; timestamptz would read a naive value in the session's zone."""
    return {k: v.replace(tzinfo=UTC) if isinstance(v, datetime) else v for k, v in row.items()}


@pytest.mark.parametrize(("version", "fixture"), _fixtures(), ids=lambda v: getattr(v, "name", ""))
def test_opens_a_database_file_written_by_a_released_version(
    store_url: str, version: int, fixture: Path
) -> None:
    """Every committed fixture opens, migrates to the newest schema and keeps all its data."""
    if store_url.startswith("sqlite"):
        shutil.copyfile(fixture, store_url.removeprefix("sqlite:///"))
    else:
        _postgres_copy(version, fixture, store_url)
    store = Store(store_url)
    try:
        assert store.schema_version == _migrations.head()
        for checked, check in CHECKS.items():
            if checked <= version:
                check(store)
        with store.connect() as conn:
            legacy = conn.execute(sqlalchemy.text("SELECT version FROM schema_version ORDER BY version"))
            assert [v for (v,) in legacy] == list(range(1, _migrations.head() + 1))
    finally:
        store.close()


def test_every_fixture_version_has_its_checks() -> None:
    assert set(CHECKS) == {v for v, _ in _fixtures()}


@pytest.mark.parametrize("version", range(1, _migrations.head()))
def test_upgrade_from_every_older_schema_keeps_data(store_url: str, version: int) -> None:
    """A database brought only to ``version`` by its migrations, with rows in it, opens under this code."""
    engine = sqlalchemy.create_engine(store_url)
    with engine.begin() as conn:
        assert _migrations.upgrade(conn, store_url, to=version) == version
        tables = sqlalchemy.MetaData()
        tables.reflect(conn)
        now = datetime.now(UTC)
        dataset = {"id": "a" * 64, "name": "cats", "created_at": now, "path": "/d", "classes": ["cat"]}
        dataset |= {"counts": {}, "shape": [1, 2, 2], "source": {}, "cleaning": {}}
        conn.execute(tables.tables["datasets"].insert().values(**dataset))
        run = {"id": "r1", "kind": "train", "name": "r", "dataset_id": "a" * 64, "model": "m"}
        run |= {
            "status": "running",
            "created_at": now,
            "config": {},
            "lineage": {},
            "metrics": {},
            "path": "/r",
        }
        conn.execute(tables.tables["runs"].insert().values(**run))
    engine.dispose()
    store = Store(store_url)
    assert store.schema_version == _migrations.head()
    assert store_runs.get_run(store, "r1").dataset_id == "a" * 64
    assert [d.name for d in store_datasets.list_datasets(store)] == ["cats"]
    store.close()


def test_migrations_build_exactly_the_tables_the_code_uses(store_url: str) -> None:
    """The schema the revisions build is the schema in ``_schema.py``: no change without its migration."""
    Store(store_url).close()
    engine = sqlalchemy.create_engine(store_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": _migrations.VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_the_first_revisions_rebuild_the_last_pre_alembic_schema(tmp_path: Path) -> None:
    """Revisions 1-5 recreate the v5 tables exactly as dcloop 0.1 made them (the v5 file's own DDL)."""
    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        _migrations.upgrade(conn, url, to=LEGACY)
    engine.dispose()
    assert _ddl(tmp_path / "rebuilt.db") == _ddl(FIXTURES / "store-v5.db")


def _ddl(path: Path) -> dict[str, str]:
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        found = {name: " ".join(sql.split()) for name, sql in rows if name not in VERSION_TABLES}
    engine.dispose()
    return found


def test_every_revision_downgrades_and_upgrades_again(store_url: str) -> None:
    """Down to an empty schema and back up: each revision's downgrade undoes its upgrade."""
    Store(store_url).close()
    engine = sqlalchemy.create_engine(store_url)
    config = _migrations._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        try:
            command.downgrade(config, "base")
        finally:
            config.attributes.pop("connection")
        assert set(sqlalchemy.inspect(conn).get_table_names()) == VERSION_TABLES
        conn.execute(sqlalchemy.text("DELETE FROM schema_version"))
    engine.dispose()
    store = Store(store_url)
    assert store.schema_version == _migrations.head()
    assert store_datasets.list_datasets(store) == []
    store.close()


def test_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    """Stores opened together on an empty database all succeed; the schema is built once."""
    barrier = threading.Barrier(4)
    opened: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(Store(store_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and {s.schema_version for s in opened} == {_migrations.head()}
    with opened[0].connect() as conn:
        versions = conn.execute(sqlalchemy.text("SELECT version FROM schema_version ORDER BY version"))
        assert [v for (v,) in versions] == list(range(1, _migrations.head() + 1))
    for store in opened:
        store.close()


BROKEN = """
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("runs", sa.Column("half_done", sa.Integer, nullable=True))
    op.execute("SELECT * FROM no_such_table")


def downgrade() -> None:
    pass
"""


def test_a_failing_migration_leaves_the_database_as_it_was(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A revision that fails halfway keeps nothing: no table, no column, the version unchanged."""
    store = Store(store_url)
    store_datasets.add_dataset(store, _dataset_row())
    store.close()
    scripts = tmp_path / "migrations"
    shutil.copytree(_migrations.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    rev = f"{_migrations.head() + 1:04d}"
    down = _migrations.revisions()[-1]
    (scripts / "versions" / f"{rev}_broken.py").write_text(BROKEN.format(rev=rev, down=down))
    monkeypatch.setattr(_migrations, "SCRIPTS", scripts)
    _migrations._config.cache_clear()
    _migrations.revisions.cache_clear()
    try:
        with pytest.raises(Exception, match="no_such_table"):
            Store(store_url)
    finally:
        _migrations._config.cache_clear()
        _migrations.revisions.cache_clear()
        monkeypatch.undo()
    engine = sqlalchemy.create_engine(store_url)
    with engine.connect() as conn:
        inspector = sqlalchemy.inspect(conn)
        assert "half_done" not in inspector.get_table_names()
        assert "half_done" not in {c["name"] for c in inspector.get_columns("runs")}
        assert _migrations.current_version(conn) == _migrations.head()
    engine.dispose()
    store = Store(store_url)
    assert [d.name for d in store_datasets.list_datasets(store)] == ["cats"]
    store.close()


def _dataset_row() -> Any:
    from dcloop.store import DatasetRecord

    now = datetime.now(UTC)
    return DatasetRecord("a" * 64, "cats", now, "/d", ["cat"], {}, [1, 2, 2], {}, {})


def test_the_package_ships_every_migration_file() -> None:
    """pyproject's package-data covers each file Alembic reads, so an installed dcloop can migrate."""
    import tomllib
    from pathlib import PurePosixPath

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "dcloop"
    ]
    package = root / "src" / "dcloop"
    files = [p for p in _migrations.SCRIPTS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) >= 3 + _migrations.head()  # __init__, env, template and one file per revision
    missing = [
        str(p.relative_to(package))
        for p in files
        if not any(
            PurePosixPath(p.relative_to(package).as_posix()).match(g) for g in globs
        )  # setuptools: no ** here
    ]
    assert missing == []


def test_a_store_and_an_optuna_study_share_one_database(store_url: str) -> None:
    """Optuna keeps its own Alembic revision in ``alembic_version``; the store's lives apart from it."""
    optuna = pytest.importorskip("optuna")
    optuna.storages.RDBStorage(store_url).remove_session()
    store = Store(store_url)
    assert store.schema_version == _migrations.head()
    study = optuna.create_study(storage=optuna.storages.RDBStorage(store_url), study_name="shared")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2
    store.close()
    store = Store(store_url)
    assert store.schema_version == _migrations.head()
    store.close()


def test_revisions_are_one_line_numbered_by_schema_version() -> None:
    """Revision N is ``NNNN`` and revises N-1: the file names alone tell the newest schema version."""
    assert _migrations.revisions() == tuple(f"{n:04d}" for n in range(1, _migrations.head() + 1))


def test_opening_a_migrated_store_does_not_load_alembic(tmp_path: Path) -> None:
    """Alembic costs about half a second to import; only a store that needs migrating pays it."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url).close()
    code = "import sys; from dcloop.store import Store; Store(sys.argv[1]); print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
