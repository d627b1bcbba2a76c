"""The server's column-wise prediction batches store exactly what the per-record path stores."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dcloop.store import open_store
from dcloop.store.predictions import (
    PredictionRows,
    get_predictions,
    log_predictions,
    new_prediction_rows,
    new_predictions,
    new_text_prediction_rows,
)

CLASSES = ["cat", "dog", "owl"]


@dataclass(frozen=True)
class Answering:
    id: str = "v1id"
    name: str = "pets"
    version: int = 1


def _batch(n: int, seed: int, store_input: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)
    return pixels, rng.dirichlet(np.ones(len(CLASSES)), size=n).astype(np.float32)


def test_rows_hold_what_the_records_hold() -> None:
    pixels, probs = _batch(4, seed=0)
    rows = new_prediction_rows(pixels, probs, CLASSES, Answering(), latency_ms=[1.0, 2.0, 3.0, 4.0])
    records = new_predictions(pixels, probs, CLASSES, Answering(), latency_ms=[1.0, 2.0, 3.0, 4.0])
    assert len(rows) == 4 and rows.ids == [r.id for r in rows.records()]
    # ids and times are new per call; everything else is the same function of the inputs
    same = [replace(r, id="", created_at=records[0].created_at) for r in rows.records()]
    assert same == [replace(r, id="") for r in records]
    assert PredictionRows.of(records).records() == records


def test_a_group_of_batches_round_trips_in_one_commit(store_url: str) -> None:
    store = open_store(store_url)
    images = [
        new_prediction_rows(*_batch(n, seed=n), CLASSES, Answering(), latency_ms=[0.5] * n) for n in (3, 1)
    ]
    unkept = new_prediction_rows(
        *_batch(2, seed=9), CLASSES, Answering(), latency_ms=[7.0] * 2, store_input=False
    )
    texts = new_text_prediction_rows(
        ["a cat", "ein Hund"], [2, 2], [0.0, 0.5], _batch(2, seed=5)[1], CLASSES, Answering(),
        latency_ms=[1.0, 1.0], endpoint="infer",
    )  # fmt: skip
    group = PredictionRows.join([*images, unkept, texts])
    log_predictions(store, group)
    got = get_predictions(store, group.ids)
    assert len(got) == 8
    for expected in group.records():
        assert got[expected.id] == expected
