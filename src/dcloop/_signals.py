"""Signal handlers set for a block and put back after it, as they were."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

Handler = Callable[[int, FrameType | None], object]


@contextmanager
def signal_handlers(names: Sequence[str], handler: Handler | None = None) -> Iterator[None]:
    """For the block, ``handler`` (when given) on the signals ``names`` this platform has; after it,
    the handlers they had before, whatever the block set meanwhile. Outside the main thread, where
    Python sets no handlers, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [sig for name in names if (sig := getattr(signal, name, None)) is not None]
    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        if handler is not None:
            for sig in signals:
                signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            if old is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, old)
