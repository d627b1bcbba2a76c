"""The restricted unpickler rebuilds arrays and refuses anything that could run code."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from dcloop.data._unpickle import load_array
from dcloop.errors import DataError


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("compress", [False, True])
def test_round_trips_arrays(compress: bool) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    payload = pickle.dumps(array, protocol=4)
    loaded = load_array(gzip.compress(payload) if compress else payload, "a.pkl")
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, array)


def test_reads_numpy1_pickles_naming_numpy_core() -> None:
    payload = pickle.dumps(np.arange(5, dtype=np.int64), protocol=3).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in payload
    np.testing.assert_array_equal(load_array(payload, "old.pkl"), np.arange(5))


@pytest.mark.parametrize("compress", [False, True])
def test_refuses_a_tampered_pickle_without_running_it(tmp_path: Path, compress: bool) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(marker), protocol=4)
    with pytest.raises(DataError, match=r"evil\.gz refers to (posix|os|nt)\.system; only numpy arrays"):
        load_array(gzip.compress(payload) if compress else payload, "evil.gz")
    assert not marker.exists()


def test_refuses_builtins_and_non_arrays() -> None:
    with pytest.raises(DataError, match=r"builtins\.eval"):
        load_array(pickle.dumps(eval), "e.pkl")
    with pytest.raises(DataError, match=r"must hold a numpy array\. Got dict"):
        load_array(pickle.dumps({"a": 1}), "d.pkl")
    with pytest.raises(DataError, match="not a readable pickled array"):
        load_array(b"\x80\x04garbage", "g.pkl")
