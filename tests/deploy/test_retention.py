"""Retention of prediction rows: bounded by age and size, keeping what the loop reads (every backend)."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.store import Store, open_store
from dcloop.store import retention as r
from dcloop.store.predictions import (
    add_labels,
    labelled_examples,
    list_predictions,
    log_predictions,
    new_predictions,
    prediction_stats,
)
from dcloop.store.retention import enforce_retention, log_bytes, prediction_windows

CLASSES = ["cat", "dog", "owl"]
SHAPE = (1, 4, 4)


@dataclass(frozen=True)
class Answering:
    id: str = "v1id"
    name: str = "pets"
    version: int = 1


def _history(
    store: Store, ages_h: list[float], labelled: list[bool], seed: int = 0, store_input: bool = True
):
    """Predictions made ``ages_h`` hours ago, the ``labelled`` ones labelled; returns them oldest first."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    pixels = rng.integers(0, 256, (len(ages_h), *SHAPE), dtype=np.uint8)
    probs = rng.dirichlet(np.ones(len(CLASSES)), len(ages_h))
    rows = new_predictions(
        pixels, probs, CLASSES, Answering(), latency_ms=rng.uniform(1, 9, len(ages_h)).tolist(),
        store_input=store_input,
    )  # fmt: skip
    rows = [
        dataclasses.replace(p, created_at=now - timedelta(hours=h)) for p, h in zip(rows, ages_h, strict=True)
    ]
    chosen = [p for p, keep in zip(rows, labelled, strict=True) if keep]
    rows.sort(key=lambda p: p.created_at)
    log_predictions(store, rows)
    add_labels(store, [(p.id, int(rng.integers(len(CLASSES)))) for p in chosen])
    return rows, now


def _figures(store: Store, since: datetime | None) -> dict:
    """What monitor, the gate and retraining read, over the window from ``since``."""
    stats = prediction_stats(store, since=since)
    x, y = labelled_examples(store, "pets", SHAPE, since, holdout=0.3, part="holdout")
    labelled = [(p.id, p.label, p.pred_label) for p in list_predictions(store, since=since, labelled=True)]
    return {"stats": stats, "gate": (x.tobytes(), y.tolist()), "labelled": labelled}


def _same(before: dict, after: dict) -> None:
    floats = ("mean_confidence", "mean_latency_ms")
    for key in ("stats", "gate", "labelled"):
        if key != "stats":
            assert after[key] == before[key]
            continue
        a, b = dict(after[key]), dict(before[key])
        for name in floats:  # sums folded in another order: equal up to rounding
            got, want = a.pop(name), b.pop(name)
            assert got == want if want is None else got == pytest.approx(want, rel=1e-9)
        for name in ("stored_inputs", "stored_input_bytes"):  # what dropping rows is for
            a.pop(name), b.pop(name)
        assert a == b


@settings(max_examples=25)
@given(
    history=st.lists(st.tuples(st.floats(0.0, 240.0), st.booleans()), min_size=1, max_size=40),
    keep_h=st.floats(1.0, 240.0),
)
def test_dropping_old_rows_never_changes_a_figure_of_the_kept_window_or_the_totals(history, keep_h) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'store.db'}")
        try:
            ages, labelled = [h for h, _ in history], [lab for _, lab in history]
            rows, now = _history(store, ages, labelled)
            kept_since = now - timedelta(hours=keep_h) + timedelta(seconds=1)
            whole, kept = _figures(store, None), _figures(store, kept_since)
            done = enforce_retention(store, prediction_days=keep_h / 24)
            old_unlabelled = sum(not lab and age > keep_h + 1 / 3600 for age, lab in history)
            assert done.rows_dropped >= old_unlabelled
            left = {p.id for p in list_predictions(store)}
            assert {p.id for p in list_predictions(store, labelled=True)} <= left
            assert len(left) == len(rows) - done.rows_dropped
            _same(whole, _figures(store, None))
            _same(kept, _figures(store, kept_since))
            assert sum(w.predictions for w in prediction_windows(store)) == done.rows_dropped
        finally:
            store.close()


def test_rows_older_than_the_bound_are_folded_labelled_ones_stay(store_url: str) -> None:
    store = open_store(store_url)
    ages = [100.0, 90.0, 80.0, 70.0, 2.0, 1.0]
    rows, _ = _history(store, ages, [False, True, False, False, False, True])
    whole = _figures(store, None)
    done = enforce_retention(store, prediction_days=1.0)
    assert done.rows_dropped == 3
    assert [p.id for p in list_predictions(store)] == [rows[1].id, rows[4].id, rows[5].id]
    windows = prediction_windows(store)
    assert sum(w.predictions for w in windows) == 3 and sum(sum(w.confidence_counts) for w in windows) == 3
    assert {w.model_version_id for w in windows} == {"v1id"}
    assert all(w.start.minute == 0 and w.start <= w.first_at <= w.last_at for w in windows)
    _same(whole, _figures(store, None))
    assert enforce_retention(store, prediction_days=1.0).rows_dropped == 0  # a second pass finds nothing


def test_rows_are_dropped_in_batches_oldest_first(store_url: str, monkeypatch) -> None:
    monkeypatch.setattr(r, "BATCH", 7)
    store = open_store(store_url)
    ages = [float(h) for h in range(60, 0, -1)]  # 60 h ago ... 1 h ago
    rows, _ = _history(store, ages, [False] * 60, store_input=False)
    assert enforce_retention(store, prediction_days=20.5 / 24).rows_dropped == 40
    assert [p.id for p in list_predictions(store)] == [p.id for p in rows[40:]]
    assert prediction_stats(store)["predictions"] == 60


def test_the_size_bound_drops_the_oldest_unlabelled_rows_until_the_log_fits(store_url: str) -> None:
    store = open_store(store_url)
    ages = [float(h) for h in range(1500, 0, -1)]
    labelled = [i % 50 == 0 for i in range(1500)]
    rows, _ = _history(store, [a / 10 for a in ages], labelled)
    whole, before = _figures(store, None), log_bytes(store)
    bound = before // 2
    assert enforce_retention(store, max_predictions_mb=before * 1.2 / 2**20).rows_dropped == 0
    done = enforce_retention(store, max_predictions_mb=bound / 2**20)
    assert done.rows_dropped > 0 and done.log_bytes == log_bytes(store)
    if store_url.startswith("sqlite"):  # PostgreSQL's indexes keep their pages until a REINDEX
        assert done.log_bytes <= bound * r.HEADROOM  # room for the rows until the next pass
        assert enforce_retention(store, max_predictions_mb=bound / 2**20).rows_dropped == 0
    left = list_predictions(store)
    unlabelled_left = [p for p in left if p.label is None]
    dropped = [p for p in rows if p.id not in {q.id for q in left}]
    assert all(p.label is None for p in dropped) or not dropped
    assert max(p.created_at for p in dropped) <= min(p.created_at for p in unlabelled_left)
    assert sum(labelled) == len(left) - len(unlabelled_left)
    _same(whole, _figures(store, None))


def test_sqlite_reuses_freed_pages_and_gives_a_large_free_share_back(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    db = tmp_path / "store.db"
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2  # incremental, on a new file
    sizes = []
    for turn in range(4):  # steady traffic under a size bound: the file stops growing
        _history(store, [0.5] * 1500, [False] * 1500, seed=turn)
        enforce_retention(store, max_predictions_mb=0.5)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        sizes.append(db.stat().st_size)
    assert sizes[-1] <= sizes[1] * 1.05, sizes
    _history(store, [0.5] * 3000, [False] * 3000, seed=9)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    grown = db.stat().st_size
    done = enforce_retention(store, max_predictions_mb=0.25)  # a lower bound: most pages come free
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    assert done.freed_bytes > 0 and db.stat().st_size <= grown - done.freed_bytes + 4096


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_monitor_figures_survive_the_rows_they_were_computed_from(served_ws, seed: int) -> None:
    from deploykit import CLASSES as PETS

    from dcloop.deploy._registry import get_model_version
    from dcloop.feedback._monitor import monitor

    rng = np.random.default_rng(seed)
    version, now, n = get_model_version(served_ws, "pets@1"), datetime.now(UTC), 300
    ages = np.sort(rng.uniform(0, 72, n))[::-1]
    rows = new_predictions(
        rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8), rng.dirichlet(np.ones(2), n), PETS, version,
        latency_ms=[2.0] * n, store_input=False,
    )  # fmt: skip
    rows = [
        dataclasses.replace(p, created_at=now - timedelta(hours=float(h)))
        for p, h in zip(rows, ages, strict=True)
    ]
    log_predictions(served_ws.store, rows)
    add_labels(served_ws.store, [(p.id, int(rng.integers(2))) for p in rows if rng.random() < 0.3])
    kept_since = now - timedelta(hours=24)

    def health(since):
        [h] = monitor(served_ws, "pets", since, export_alerts=False).versions
        return h

    whole, kept = health(None), health(kept_since)
    assert enforce_retention(served_ws.store, prediction_days=1.0).rows_dropped > 0
    assert health(kept_since) == kept  # the window kept: every figure, bucket by bucket
    after = health(None)
    for name in ("predictions", "labelled", "accuracy", "f1_macro", "confidence_counts"):
        assert getattr(after, name) == getattr(whole, name)
    assert after.mean_confidence == pytest.approx(whole.mean_confidence, rel=1e-12)
    assert sum(b["predictions"] for b in after.buckets) == whole.predictions
    assert [b["labelled"] for b in after.buckets if b["labelled"]] == [
        b["labelled"] for b in whole.buckets if b["labelled"]
    ]


def test_a_label_racing_a_retention_pass_is_either_refused_or_kept(store_url: str, monkeypatch) -> None:
    import threading

    from dcloop.errors import DcloopError

    monkeypatch.setattr(r, "BATCH", 25)  # many short transactions for the labels to race
    store = open_store(store_url)
    rows, _ = _history(store, [48.0 - i / 100 for i in range(600)], [False] * 600, store_input=False)
    acknowledged: list[str] = []
    started, done = threading.Event(), threading.Event()

    def label() -> None:
        for p in reversed(rows):  # newest first: the pass deletes oldest first, so they meet mid-pass
            if done.is_set():
                return
            try:
                add_labels(store, [(p.id, "owl")])
            except DcloopError:  # the row went first: refused, not acknowledged
                continue
            acknowledged.append(p.id)
            if len(acknowledged) == 20:
                started.set()
        started.set()

    labeller = threading.Thread(target=label)
    labeller.start()
    started.wait(60)
    dropped = enforce_retention(store, prediction_days=1.0).rows_dropped
    done.set()
    labeller.join()
    kept = {p.id for p in list_predictions(store, labelled=True)}
    assert len(acknowledged) >= 20 and dropped > 0
    assert set(acknowledged) <= kept
    assert dropped + len(list_predictions(store)) == len(rows)


def test_batches_of_one_hour_merge_into_its_window(store_url: str, monkeypatch) -> None:
    monkeypatch.setattr(r, "BATCH", 4)
    store = open_store(store_url)
    _history(store, [30.0 + i / 1000 for i in range(30)], [False] * 30, store_input=False)
    whole = _figures(store, None)
    assert enforce_retention(store, prediction_days=1.0).rows_dropped == 30
    windows = prediction_windows(store)
    assert len(windows) <= 2 and sum(w.predictions for w in windows) == 30  # 30 rows span 2 minutes
    assert sum(sum(w.predicted_classes.values()) for w in windows) == 30
    _same(whole, _figures(store, None))


def test_a_pass_leaves_the_room_asked_for_below_the_bound(tmp_path) -> None:
    """A fast writer's pass leaves ``room_bytes`` below the bound (more than the fixed headroom), but
    never drops more than half the bound to make room."""
    store = open_store(f"sqlite:///{tmp_path / 'room.db'}")
    _history(store, [h / 10 for h in range(1500, 0, -1)], [False] * 1500)
    bound = log_bytes(store)
    done = enforce_retention(store, max_predictions_mb=bound / 2**20, room_bytes=bound // 3)
    assert done.log_bytes_before == bound and done.rows_dropped > 0
    assert done.log_bytes is not None and done.log_bytes <= bound - bound // 3 < bound * r.HEADROOM
    done = enforce_retention(store, max_predictions_mb=bound / 2**20, room_bytes=bound)
    assert done.log_bytes is not None and done.log_bytes >= bound // 2 * 0.9, "half the bound stays"


def test_free_pages_go_back_while_the_file_is_over_the_bound(tmp_path) -> None:
    """Below a quarter free, new rows reuse the free pages, unless the file is over the log's bound."""
    store = open_store(f"sqlite:///{tmp_path / 'free.db'}")
    _history(store, [h / 10 for h in range(1500, 0, -1)], [False] * 1500)
    enforce_retention(store, prediction_days=140 / 24)  # the oldest tenth: some pages free, under a quarter
    assert r._give_back(store, None) == 0, "a few free pages are kept for new rows"
    assert r._give_back(store, 1) > 0, "over the bound, they go back to the file system"
