"""Fixtures shared by every test folder: a fresh workspace and store URLs for each backend."""

from __future__ import annotations

import ctypes.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
# OpenMP threads that spin while idle starve each other on a shared, busy CPU (30x slower small ops).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The machine is shared and noisy: property tests check properties, never speed.
settings.register_profile(
    "dcloop",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("dcloop")

PG_URL = os.environ.get("DCLOOP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def workspace(tmp_path: Path):
    """A new workspace (dcloop.yaml with defaults, SQLite store) in a temporary folder."""
    from dcloop.workspace import init_workspace

    return init_workspace(tmp_path / "ws")


def _postgres_reachable() -> bool:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(PG_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards.

    CI starts the local server; a missing server is a failure, not a skip, when
    DCLOOP_TEST_PG_URL is set (so the PostgreSQL suite can never silently not run there).
    """
    import sqlalchemy

    if not _postgres_reachable():
        if os.environ.get("DCLOOP_TEST_PG_URL"):
            pytest.fail(f"PostgreSQL at {PG_URL} is not reachable")
        pytest.skip("PostgreSQL is not running here (set DCLOOP_TEST_PG_URL to require it)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        from dcloop.store import close_store
        from dcloop.store._store import _open

        for url in [u for u in _open if schema in u]:
            close_store(url)
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both backends: a SQLite file and a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


# since glibc 2.34 MALLOC_CHECK_ works only with this library preloaded (None: older glibc, or none)
MALLOC_DEBUG = ctypes.util.find_library("c_malloc_debug")


@pytest.fixture
def heap_checked_env() -> dict[str, str]:
    """This process's environment for a child in which glibc checks the heap at every call and aborts
    on the first inconsistency (``MALLOC_CHECK_=3``, with glibc's malloc-debug library preloaded where
    it is there), and dumps Python's stack on a fatal signal."""
    env = {**os.environ, "MALLOC_CHECK_": "3", "PYTHONFAULTHANDLER": "1"}
    if MALLOC_DEBUG:
        env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), MALLOC_DEBUG]))
    return env
