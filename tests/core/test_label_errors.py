"""A label for a prediction that is not stored is a NotFoundError (a server's 404), by type, not by text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dcloop.errors import DataError, NotFoundError, PredictionNotFoundError
from dcloop.store import Store, open_store
from dcloop.store.predictions import Prediction, add_labels, log_predictions, new_prediction


@dataclass(frozen=True)
class _Answering:
    id: str = "v1id"
    name: str = "pets"
    version: int = 1


def _stored(tmp_path: Path) -> tuple[Store, Prediction]:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    pixels, probs = np.zeros((1, 4, 4), dtype=np.uint8), np.array([0.9, 0.1])
    row = new_prediction(pixels, probs, ["cat", "dog"], _Answering(), latency_ms=1.0)
    log_predictions(store, [row])
    return store, row


def test_unknown_prediction_is_not_found_and_still_refused_as_data(tmp_path: Path) -> None:
    store, row = _stored(tmp_path)
    with pytest.raises(PredictionNotFoundError, match=r"no prediction 'nope'") as info:
        add_labels(store, [(row.id, "dog"), ("nope", "cat")])
    assert isinstance(info.value, NotFoundError) and isinstance(info.value, DataError)


def test_a_bad_label_alone_is_a_data_error_not_a_missing_one(tmp_path: Path) -> None:
    store, row = _stored(tmp_path)
    with pytest.raises(DataError, match=r"label 'eel' of prediction .* is not one of cat, dog") as info:
        add_labels(store, [(row.id, "eel")])
    assert not isinstance(info.value, NotFoundError)
