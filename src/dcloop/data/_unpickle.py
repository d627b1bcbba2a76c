"""A restricted unpickler: it rebuilds plain numpy arrays and refuses every other global.

Pickles can run arbitrary code on load (``os.system`` is one ``REDUCE`` away), so dcloop never calls
plain ``pickle.load`` on a file; this reader admits only the three numpy callables an ndarray pickle
names, so a tampered file fails with a DataError instead of executing anything.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from typing import Any

import numpy as np

from dcloop.errors import DataError

# (module, name) pairs an ndarray pickle needs; numpy 2 moved numpy.core to numpy._core.
_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, origin: str) -> None:
        super().__init__(file)
        self.origin = origin

    def find_class(self, module: str, name: str) -> Any:
        if module == "numpy.core" or module.startswith("numpy.core."):
            module = "numpy._core" + module.removeprefix("numpy.core")
        if (module, name) not in _ALLOWED:
            raise DataError(
                f"{self.origin} refers to {module}.{name}; only numpy arrays may be loaded from a pickle. "
                "Refusing to load it."
            )
        return super().find_class(module, name)


def load_array(payload: bytes, origin: str) -> np.ndarray:
    """The ndarray pickled in ``payload`` (gzip'd or not); ``origin`` names the file in errors."""
    try:
        if payload[:2] == b"\x1f\x8b":
            payload = gzip.decompress(payload)
        value = _ArrayUnpickler(io.BytesIO(payload), origin).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error, ValueError, TypeError, IndexError) as exc:
        raise DataError(f"{origin} is not a readable pickled array: {exc}.") from None
    if not isinstance(value, np.ndarray):
        raise DataError(f"{origin} must hold a numpy array. Got {type(value).__name__}.")
    return value
