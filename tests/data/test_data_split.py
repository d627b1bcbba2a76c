"""Property tests of the stratified split."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.data._split import stratified_split

labels = st.lists(st.integers(0, 4), min_size=0, max_size=300).map(lambda v: np.array(v, dtype=np.int64))
fractions = st.floats(0.0, 0.45)


@settings(max_examples=150, deadline=None)
@given(y=labels, val=fractions, test=fractions, seed=st.integers(-(2**40), 2**40))
def test_split_is_a_stratified_partition(y: np.ndarray, val: float, test: float, seed: int) -> None:
    splits = stratified_split(y, val, test, seed)
    joined = np.concatenate(list(splits.values()))
    assert sorted(joined.tolist()) == list(range(len(y)))  # disjoint and covering
    for label in np.unique(y):
        n = int((y == label).sum())
        n_test = int((y[splits["test"]] == label).sum())
        n_val = int((y[splits["val"]] == label).sum())
        assert abs(n_test - n * test) <= 1
        assert abs(n_val - (n - n_test) * val) <= 1
    again = stratified_split(y, val, test, seed)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


@settings(max_examples=60, deadline=None)
@given(y=labels, val=fractions, seed=st.integers(0, 1000), data=st.data())
def test_a_sources_own_test_split_is_kept(y: np.ndarray, val: float, seed: int, data: st.DataObject) -> None:
    own = np.array(data.draw(st.lists(st.booleans(), min_size=len(y), max_size=len(y))), dtype=bool)
    splits = stratified_split(y, val, 0.3, seed, test=own)
    if own.any():
        assert splits["test"].tolist() == np.flatnonzero(own).tolist()
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(len(y)))


def test_different_seeds_give_different_splits() -> None:
    y = np.repeat(np.arange(2), 100)
    a, b = stratified_split(y, 0.1, 0.2, 0), stratified_split(y, 0.1, 0.2, 1)
    assert not np.array_equal(a["test"], b["test"])
    assert len(a["test"]) == len(b["test"]) == 40
