"""Aggregates of the prediction log kept for a few seconds, refreshed behind the reader's back.

Counting a log of 200,000 predictions takes seconds of CPU on a small machine, whatever the index; a
dashboard that recounted on every request would answer slowly and load the store the loop writes to.
So an aggregate is computed once, served for ``FRESH_S`` seconds, and after that served stale while
one background thread recomputes it (stale-while-revalidate): a page shows figures at most
``FRESH_S`` seconds plus one recount old, and a reader never waits for a recount except the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
FRESH_S = 15.0


class Aggregates:
    """Computed values by key, each with the time it was computed; thread-safe."""

    def __init__(self, fresh_s: float = FRESH_S) -> None:
        self.fresh_s = fresh_s
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``key``: computed now when absent, else the kept one (refreshed in a thread when stale)."""
        with self._lock:
            kept = self._values.get(key)
            stale = kept is not None and time.monotonic() - kept[0] > self.fresh_s
            if stale and key not in self._refreshing:
                self._refreshing.add(key)
                threading.Thread(target=self._refresh, args=(key, compute), daemon=True).start()
        if kept is None:
            value = compute()
            with self._lock:
                self._values[key] = (time.monotonic(), value)
            return value
        return kept[1]

    def _refresh(self, key: Hashable, compute: Callable[[], Any]) -> None:
        try:
            value = compute()
            with self._lock:
                self._values[key] = (time.monotonic(), value)
        except Exception:
            with self._lock:
                self._values.pop(key, None)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
