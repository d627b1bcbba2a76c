"""Progress bars for long steps, on stderr. Off unless the CLI (or a user) turns them on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
_enabled = False


def enable(on: bool = True) -> None:
    """Show progress bars (the CLI turns them on when stderr is a terminal or asked to)."""
    global _enabled
    _enabled = on


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar when enabled."""
    if not _enabled:
        yield from items
        return
    from rich.progress import track as rich_track

    from dcloop.cli._output import err_console

    yield from rich_track(items, description=description, total=total, console=err_console, transient=True)


class _Bar:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: float = 1, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, **fields)

    def update(self, description: str | None = None, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description, **fields)


@contextmanager
def bar(description: str, total: float | None) -> Iterator[_Bar]:
    """A progress bar advanced by hand: ``with bar("train", n) as b: b.advance()``."""
    if not _enabled:
        yield _Bar(None, None)
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from dcloop.cli._output import err_console

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=total, info="")
        yield _Bar(progress, task)
