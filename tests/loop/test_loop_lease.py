"""The controller's records on SQLite and PostgreSQL: one lease holder per model, decisions, requests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from dcloop.store import controller as c
from dcloop.store import open_store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_the_lease_has_one_holder_until_it_expires_or_is_released(store_url: str) -> None:
    store = open_store(store_url)
    first = c.acquire_lease(store, "animals", "host-a:1", 60, T0)
    assert first.owner == "host-a:1" and first.expires_at == T0 + timedelta(seconds=60)
    held = c.acquire_lease(store, "animals", "host-b:2", 60, T0 + timedelta(seconds=30))
    assert held.owner == "host-a:1", "a live lease is not taken over"
    assert c.acquire_lease(store, "other", "host-b:2", 60, T0).owner == "host-b:2", "one lease per model"

    assert c.renew_lease(store, "animals", "host-a:1", 60, T0 + timedelta(seconds=50))
    assert not c.renew_lease(store, "animals", "host-b:2", 60, T0 + timedelta(seconds=50))
    assert c.acquire_lease(store, "animals", "host-b:2", 60, T0 + timedelta(seconds=100)).owner == "host-a:1"

    late = T0 + timedelta(seconds=111)  # renewed at +50 for 60 s: expired at +110
    taken = c.acquire_lease(store, "animals", "host-b:2", 60, late)
    assert taken.owner == "host-b:2" and taken.acquired_at == late
    assert not c.renew_lease(store, "animals", "host-a:1", 60, late), "the old holder learns it lost it"
    c.release_lease(store, "animals", "host-a:1")  # not the holder: changes nothing
    assert c.get_lease(store, "animals").owner == "host-b:2"
    c.release_lease(store, "animals", "host-b:2")
    assert c.get_lease(store, "animals") is None


def test_racing_takers_get_one_holder(store_url: str) -> None:
    """Threads with their own engines (like separate processes) race for one free lease."""
    from dcloop.store._store import Store

    open_store(store_url)  # migrated once
    stores = [Store(store_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    owners: list[str] = []

    def take(i: int) -> None:
        barrier.wait()
        owners.append(c.acquire_lease(stores[i], "animals", f"taker-{i}", 60, T0).owner)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert len(owners) == len(stores) and len(set(owners)) == 1, owners


def test_decisions_and_requests_round_trip(store_url: str) -> None:
    store = open_store(store_url)
    request = c.add_request(store, "animals", "labels from the night shift", T0)
    assert [r.reason for r in c.pending_requests(store, "animals")] == ["labels from the night shift"]
    assert c.pending_requests(store, "other") == []
    c.mark_handled(store, [request.id], T0)
    assert c.pending_requests(store, "animals") == []

    for i, outcome in enumerate(["not_started", "started"]):
        c.record_decision(
            store,
            at=T0 + timedelta(seconds=i),
            model="animals",
            trigger="labels",
            outcome=outcome,
            reason=f"r{i}",
            figures={"new_labels": 30 + i},
            owner="me",
        )
    for at, outcome, cpu_s in [(-2, "finished", 3600.0), (0, "failed", 1800.0), (1, "resumed", 999.0)]:
        c.record_decision(
            store,
            at=T0 + timedelta(days=at),
            model="animals",
            trigger="labels",
            outcome=outcome,
            reason="r",
            figures={"cpu_s": cpu_s},
            owner="me",
        )
    assert c.cpu_hours_since(store, "animals", T0 - timedelta(days=1)) == 0.5, "ended turns of the last day"
    decisions = c.list_decisions(store, "animals")[:2]
    assert [d.outcome for d in decisions] == ["not_started", "started"]
    assert decisions[1].figures == {"new_labels": 31} and decisions[0].at == T0
    assert [d.outcome for d in c.list_decisions(store, limit=1)] == ["resumed"]
