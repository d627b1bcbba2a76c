"""Opening the workspace store: a new database (migrated from empty), one at the newest schema, and the
committed v5 file (stamped, then upgraded); each in a fresh process, import included, as a command pays
it. Prints a table of medians.

Usage: .venv/bin/python benchmarks/store_open.py [--repeat 5] [--url postgresql+psycopg://...]
(with --url, each run uses a new schema there instead of a SQLite file; the v5 row is SQLite only)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

V5 = Path(__file__).resolve().parents[1] / "tests" / "core" / "fixtures" / "store-v5.db"
OPEN = """
import sys, time
start = time.perf_counter()
from dcloop.store import Store
Store(sys.argv[1]).close()
print((time.perf_counter() - start) * 1000, 'alembic' in sys.modules)
"""


def _open(url: str) -> tuple[float, bool]:
    out = subprocess.run([sys.executable, "-c", OPEN, url], capture_output=True, text=True, check=True)
    ms, alembic = out.stdout.split()
    return float(ms), alembic == "True"


def _pg_schema(url: str, name: str, create: bool) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(
            sqlalchemy.text(f'CREATE SCHEMA "{name}"' if create else f'DROP SCHEMA "{name}" CASCADE')
        )
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", help="a PostgreSQL URL (default: SQLite files in a temporary folder)")
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, bool]]] = {"new store": [], "store at the newest schema": []}
    if args.url is None:
        rows["v5 file (before Alembic)"] = []
    for _ in range(args.repeat):
        folder = Path(tempfile.mkdtemp(prefix="dcloop-bench-store-"))
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        url = _pg_schema(args.url, schema, create=True) if args.url else f"sqlite:///{folder / 'new.db'}"
        rows["new store"].append(_open(url))
        rows["store at the newest schema"].append(_open(url))
        if args.url is None:
            shutil.copyfile(V5, folder / "v5.db")
            rows["v5 file (before Alembic)"].append(_open(f"sqlite:///{folder / 'v5.db'}"))
        shutil.rmtree(folder)
        if args.url:
            _pg_schema(args.url, schema, create=False)
    print(f"| open ({'PostgreSQL' if args.url else 'SQLite'}, fresh process) | median ms | Alembic loaded |")
    print("| --- | --- | --- |")
    for label, results in rows.items():
        ms = statistics.median(r[0] for r in results)
        print(f"| {label} | {ms:.0f} | {'yes' if any(r[1] for r in results) else 'no'} |")


if __name__ == "__main__":
    main()
