"""The prediction log's SQL aggregates equal the same figures counted row by row in Python."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.store import open_store
from dcloop.store import predictions as log
from dcloop.ui._queries import bucket_seconds, scores

CLASSES = ["cat", "dog", "cow"]
START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Answering:
    id: str
    name: str
    version: int


def _store(folder):
    return open_store(f"sqlite:///{folder / uuid.uuid4().hex}.db")


def _fill(store, seed: int, n: int, versions: int, labelled: float):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        model = Answering(f"v{i % versions}", "pets", 1 + i % versions)
        probs = rng.dirichlet(np.ones(len(CLASSES)))[None]
        pixels = rng.integers(0, 256, (1, 1, 4, 4), dtype=np.uint8)
        row = log.new_predictions(pixels, probs, CLASSES, model, latency_ms=[1.0])[0]
        rows.append(
            dataclasses.replace(row, created_at=START + timedelta(seconds=int(rng.integers(0, 86400))))
        )
    log.log_predictions(store, rows)
    chosen = [r for r in rows if rng.random() < labelled]
    if chosen:
        log.add_labels(store, [(r.id, int(rng.integers(0, 3))) for r in chosen])
        log.add_labels(store, [(r.id, int(rng.integers(0, 3))) for r in chosen[::2]])  # later labels win
    return rows


def _check(store, bucket: int) -> None:
    kept = log.list_predictions(store, with_inputs=True)

    counts = {}
    for r in kept:
        key = (r.model_version, int(r.created_at.timestamp()) // bucket * bucket)
        counts[key] = counts.get(key, 0) + 1
    got = {
        (r["model_version"], r["bucket"]): r["predictions"]
        for r in log.prediction_counts_by_bucket(store, bucket, None, None)
    }
    assert got == counts

    confusion = {}
    for r in kept:
        if r.label is not None:
            key = (
                r.model_version,
                int(r.created_at.timestamp()) // bucket * bucket,
                r.label_index,
                r.pred_index,
            )
            confusion[key] = confusion.get(key, 0) + 1
    rows = log.labelled_confusion_by_bucket(store, bucket, None, None)
    assert {
        (r["model_version"], r["bucket"], r["true_index"], r["pred_index"]): r["n"] for r in rows
    } == confusion

    hist = {}
    for r in kept:
        key = (r.model_version, min(int(r.confidence * 10), 9))
        hist[key] = hist.get(key, 0) + 1
    got_hist = {}
    for r in log.confidence_histogram(store, 10, None, None):
        got_hist[(r["model_version"], r["bin"])] = got_hist.get((r["model_version"], r["bin"]), 0) + r["n"]
    assert got_hist == hist

    share = 0.3
    labelled_rows = [r for r in kept if r.label is not None]
    held = [r for r in labelled_rows if log.in_holdout(log.prediction_pixels(r), share)]
    assert log.feedback_counts(store, share, None, None) == {
        "predictions": len(kept),
        "labelled": len(labelled_rows),
        "held_out": len(held),
    }


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 60),
    versions=st.integers(1, 3),
    labelled=st.floats(0, 1),
    bucket=st.sampled_from([60, 900, 3600, 6 * 3600]),
)
def test_aggregates_equal_row_by_row_counts(tmp_path_factory, seed, n, versions, labelled, bucket):
    store = _store(tmp_path_factory.mktemp("agg"))
    _fill(store, seed, n, versions, labelled)
    _check(store, bucket)
    store.close()


def test_aggregates_on_every_backend(store_url):
    store = open_store(store_url)
    _fill(store, 7, 50, 2, 0.6)
    for bucket in (900, 3600):
        _check(store, bucket)


def test_scores_match_their_definitions(tmp_path):
    store = _store(tmp_path)
    _fill(store, 3, 80, 1, 0.7)
    kept = [r for r in log.list_predictions(store, with_inputs=False) if r.label is not None]
    labelled, accuracy, f1 = scores(log.labelled_confusion_by_bucket(store, None, None, None), len(CLASSES))
    truth = np.array([r.label_index for r in kept])
    guess = np.array([r.pred_index for r in kept])
    per_class = []
    for k in range(len(CLASSES)):
        tp = int(((truth == k) & (guess == k)).sum())
        wrong = int(((truth != guess) & ((truth == k) | (guess == k))).sum())
        per_class.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
    assert labelled == len(kept)
    assert accuracy == (truth == guess).mean()
    assert abs(f1 - float(np.mean(per_class))) < 1e-12
    store.close()


@given(span=st.floats(0, 10 * 365 * 86400), buckets=st.integers(1, 200))
def test_bucket_width_cuts_the_span_into_at_most_the_buckets_asked(span, buckets):
    width = bucket_seconds(span, buckets)
    assert width == 7 * 86400 or span / width <= buckets
