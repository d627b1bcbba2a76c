"""Running a training step in a child process, so a native crash becomes a one-line error.

A crash inside torch's native kernels (a segfault, glibc's ``double free or corruption`` abort)
kills the process that runs it: no Python exception, no ``finally``, no error line. A stage that
trains inside a larger job (the fine-tune of a pruned model, a distilled student) runs that fit
through ``call_isolated``: in a spawned child, so the parent outlives the crash, names the step
that died and how to avoid it, and cleans up as it does for any error.
"""

from __future__ import annotations

import logging
import pickle
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from dcloop.errors import TrainError

log = logging.getLogger(__name__)
T = TypeVar("T")


def call_isolated(step: str, hint: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a spawned child process; its result or its exception comes back.

    ``fn`` must be importable by name (a module-level function). If the child dies without
    answering (a signal, a native abort) this raises ``TrainError`` naming ``step`` and ``hint``.
    """
    import multiprocessing

    from dcloop import progress

    context = multiprocessing.get_context("spawn")  # fork would copy torch's OpenMP pool mid-state
    receive, send = context.Pipe(duplex=False)
    # Plain pickle between two processes of this program over a private pipe: nothing a user hands in.
    # Not Connection.send/recv: torch's reductions there pass tensors as shared memory the child
    # frees when it exits, before the parent reads them.
    payload = pickle.dumps((fn, args, kwargs, progress.is_enabled()))
    child = context.Process(target=_child, args=(send, payload), name=f"dcloop {step}", daemon=True)
    child.start()
    send.close()
    try:
        try:
            ok, value = pickle.loads(receive.recv_bytes())
        except EOFError:
            child.join()
            raise TrainError(_crash_text(step, hint, child.exitcode)) from None
        child.join()
    finally:
        if child.is_alive():  # the parent was interrupted: take the child down with it
            child.terminate()
            child.join()
        receive.close()
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _child(send: Any, payload: bytes) -> None:
    from dcloop import progress

    fn, args, kwargs, bars = pickle.loads(payload)
    progress.enable(bars)
    try:
        answer = pickle.dumps((True, fn(*args, **kwargs)))
    except Exception as exc:
        try:
            answer = pickle.dumps((False, exc))
        except Exception:  # an exception that does not pickle still comes back as one line
            answer = pickle.dumps((False, TrainError(f"{type(exc).__name__}: {exc}")))
    send.send_bytes(answer)
    send.close()


def _crash_text(step: str, hint: str, exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with code {exitcode} without an answer"
    return (
        f"The {step} step {how} (a native crash in torch, or the memory killer); nothing was recorded. {hint}"
    )
