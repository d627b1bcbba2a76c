"""signal_handlers: a handler for the block, the old handlers after it, nothing off the main thread."""

from __future__ import annotations

import signal
import threading

from dcloop._signals import signal_handlers


def test_the_handler_holds_for_the_block_and_the_old_ones_come_back_whatever_it_set() -> None:
    seen: list[int] = []
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with signal_handlers(("SIGTERM", "SIGINT", "NOSUCHSIGNAL"), lambda signum, frame: seen.append(signum)):
        signal.raise_signal(signal.SIGTERM)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a library inside the block might
    assert seen == [signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_off_the_main_thread_the_block_runs_and_no_handler_changes() -> None:
    before = signal.getsignal(signal.SIGTERM)
    ran: list[bool] = []

    def body() -> None:
        with signal_handlers(("SIGTERM",), lambda signum, frame: None):
            ran.append(signal.getsignal(signal.SIGTERM) is before)

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert ran == [True] and signal.getsignal(signal.SIGTERM) is before
