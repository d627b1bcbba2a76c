"""Progress bars for long steps, on stderr. Off unless the CLI (or a user) turns them on.

The CLI hands in its own stderr console, so bars and its messages share one terminal writer; this
module imports nothing of the CLI (it sits below every stage that reports progress).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
_enabled = False
_console: Any = None  # a rich Console on stderr; made on first use unless one is handed in


def enable(on: bool = True, console: Any = None) -> None:
    """Show progress bars (the CLI turns them on when stderr is a terminal or asked to), on
    ``console`` when given (a ``rich.console.Console``), else on a stderr console of their own."""
    global _enabled, _console
    _enabled = on
    if console is not None:
        _console = console


def is_enabled() -> bool:
    """Whether bars are shown (a child process that reports progress turns them on alike)."""
    return _enabled


def _stderr() -> Any:
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar when enabled."""
    if not _enabled:
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, console=_stderr(), transient=True)


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: float = 1, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, **fields)

    def set(self, completed: float, **fields: Any) -> None:
        """Show ``completed`` (of the bar's total) now: a bar of seconds follows a clock this way."""
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)


@contextmanager
def bar(description: str, total: float | None, unit: str = "") -> Iterator[_Bar]:
    """A progress bar advanced by hand: ``with bar("train", n) as b: b.advance()``.

    ``total`` None: a count with no end known (no bar, no time remaining). ``unit`` follows the count
    ("12/60 s")."""
    if not _enabled:
        yield _Bar(None, None)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    after = f" {unit}" if unit else ""
    known = total is not None  # a bar, "n/total" and the time remaining; else only the count
    columns = [
        TextColumn("{task.description}"),
        *([BarColumn()] if known else []),
        TextColumn(("{task.completed:.0f}/{task.total:.0f}" if known else "{task.completed:.0f}") + after),
        TimeElapsedColumn(),
        *([TimeRemainingColumn()] if known else []),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=_stderr(), transient=True) as progress:
        task = progress.add_task(description, total=total, info="")
        yield _Bar(progress, task)
