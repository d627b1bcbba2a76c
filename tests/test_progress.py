"""Progress bars: drawn on a terminal console for a known total, an open-ended count and a bar of
seconds; nothing at all when they are off."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dcloop import progress


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Bars on, drawn on a terminal console writing to the returned buffer."""
    out = io.StringIO()
    monkeypatch.setattr(progress, "_enabled", True)
    monkeypatch.setattr(progress, "_console", Console(file=out, force_terminal=True, width=120))
    return out


def test_a_bar_with_a_total_shows_the_count_of_the_total_with_its_unit(terminal: io.StringIO) -> None:
    with progress.bar("train", total=10.0, unit="steps") as bar:
        for _ in range(3):
            bar.advance(info="epoch 1/2")
    text = terminal.getvalue()
    assert "train" in text and "3/10 steps" in text and "epoch 1/2" in text


def test_a_bar_with_no_total_counts_without_failing(terminal: io.StringIO) -> None:
    with progress.bar("train", total=None, unit="steps") as bar:
        for _ in range(4):
            bar.advance(info="epoch 1")
    text = terminal.getvalue()
    assert "4 steps" in text and "epoch 1" in text


def test_set_moves_a_bar_of_seconds_to_the_value_given(terminal: io.StringIO) -> None:
    with progress.bar("train", total=60.0, unit="s") as bar:
        bar.set(12.4, info="epoch 3")
    assert "12/60 s" in terminal.getvalue()


def test_off_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(progress, "_enabled", False)
    monkeypatch.setattr(progress, "_console", Console(file=out, force_terminal=True))
    with progress.bar("train", total=None) as bar:
        bar.advance()
        bar.set(3.0)
    assert out.getvalue() == ""


def test_track_yields_every_item_of_a_sized_or_unsized_iterable(terminal: io.StringIO) -> None:
    assert list(progress.track([1, 2, 3], "decoding images")) == [1, 2, 3]
    assert list(progress.track(iter(range(5)), "resizing images")) == list(range(5))
    assert "decoding images" in terminal.getvalue() and "resizing images" in terminal.getvalue()
