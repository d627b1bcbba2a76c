"""How a cluster run's worker records become attempts (restarts) and nodes, without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcloop.cluster._train import attempts


def _write(folder: Path, started: float, rank: int, world: int, node: str) -> None:
    path = folder / "cluster" / "L" / f"{int(started * 1e9)}-rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rank": rank, "world": world, "node_id": node, "started": started}))


@pytest.mark.parametrize(
    ("records", "sizes"),
    [
        ([(1.0, 1, 2, "b"), (1.5, 0, 2, "a")], [2]),  # rank 1 may start first: still one attempt
        ([(1.0, 0, 2, "a"), (1.2, 1, 2, "b"), (9.0, 0, 1, "a")], [2, 1]),  # a node lost, resumed on one
        (
            [(1.0, 0, 2, "a"), (1.2, 1, 2, "b"), (9.0, 1, 2, "a"), (9.1, 0, 2, "c")],
            [2, 2],
        ),  # a new node joined
        ([(1.0, 0, 1, "a"), (5.0, 0, 1, "a"), (9.0, 0, 1, "a")], [1, 1, 1]),
    ],
)
def test_attempts_group_by_repeated_rank_or_new_world(tmp_path: Path, records, sizes) -> None:
    for started, rank, world, node in records:
        _write(tmp_path, started, rank, world, node)
    groups = attempts(tmp_path, "L")
    assert [len(g) for g in groups] == sizes
    assert all(sorted(r["rank"] for r in g) == list(range(len(g))) for g in groups)


def test_no_records_is_no_attempt(tmp_path: Path) -> None:
    assert attempts(tmp_path, "missing") == []
