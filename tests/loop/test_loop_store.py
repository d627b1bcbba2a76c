"""Loop turn records on both store backends (SQLite file and PostgreSQL)."""

from __future__ import annotations

import pytest

from dcloop.errors import NotFoundError
from dcloop.store import open_store
from dcloop.store import turns as q


def test_turns_and_steps_round_trip(store_url: str) -> None:
    store = open_store(store_url)
    assert q.latest_open_turn(store) is None
    first = q.start_turn(store, {"train": {"epochs": 1}})
    assert first.number == 1 and first.status == "running" and first.steps == ()
    q.finish_step(store, first.id, "prepare", 0, {"dataset": "abc"}, 0.5, "finished")
    q.finish_step(store, first.id, "train", 1, {"run": "r1"}, 2.0, "finished")
    q.finish_step(store, first.id, "train", 1, {"run": "r2"}, 1.0, "finished")  # a re-run replaces it
    q.set_status(store, first.id, "paused")

    turn = q.latest_open_turn(store)
    assert turn is not None and turn.id == first.id and turn.status == "paused"
    assert [s.step for s in turn.steps] == ["prepare", "train"]
    assert turn.outputs() == {"dataset": "abc", "run": "r2"}
    assert turn.config == {"train": {"epochs": 1}} and turn.finished_at is None

    q.set_status(store, first.id, "failed", "train: boom")
    failed = q.get_turn(store, first.id)
    assert failed.error == "train: boom" and failed.finished_at is not None
    q.set_status(store, first.id, "finished")
    assert q.latest_open_turn(store) is None

    second = q.start_turn(store, {})
    assert second.number == 2
    assert [t.number for t in q.list_turns(store)] == [1, 2]
    with pytest.raises(NotFoundError, match="No loop turn 'nope'"):
        q.get_turn(store, "nope")


def test_only_the_newest_turn_is_resumable(store_url: str) -> None:
    store = open_store(store_url)
    old = q.start_turn(store, {})
    q.set_status(store, old.id, "paused")
    new = q.start_turn(store, {})
    q.set_status(store, new.id, "finished")
    assert q.latest_open_turn(store) is None, "an older paused turn is not resumed over a newer finished one"
