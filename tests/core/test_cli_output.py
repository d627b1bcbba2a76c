"""CLI tables at 80 columns: no line wider than the terminal, ids cut to 12 characters, times to the
second, and neither (nor a number) split across lines; paths of a record print whole below it."""

from __future__ import annotations

import io
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from dcloop.cli import _output

ids = st.text("0123456789abcdef", min_size=32, max_size=32)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda t: t.replace(tzinfo=UTC)
)
numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
words = st.text(string.ascii_lowercase + "-_ ", min_size=0, max_size=30)


def _render(monkeypatch: pytest.MonkeyPatch, show, *args) -> str:
    buffer = io.StringIO()
    monkeypatch.setattr(_output, "console", Console(file=buffer, width=80, color_system=None))
    show(*args)
    return buffer.getvalue()


@given(
    rows=st.lists(st.tuples(ids, words, numbers, times), min_size=1, max_size=5),
    headers=st.lists(
        st.sampled_from(["run", "name", "images_per_s", "created_at", "x"]), min_size=4, max_size=4
    ),
)
def test_tables_fit_80_columns_and_keep_ids_and_times_whole(rows, headers) -> None:
    with pytest.MonkeyPatch.context() as mp:
        out = _render(mp, _output.print_table, "t", headers, [list(r) for r in rows])
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    for run, _, number, time in rows:
        assert any(run[:12] in line for line in lines) and run not in out
        assert any(time.strftime("%Y-%m-%d %H:%M:%S") in line for line in lines)
        assert any(_output._cell(number) in line for line in lines)


@given(
    rows=st.lists(
        st.tuples(
            ids, st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=8), max_size=4), numbers
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_short_words_are_not_split_when_the_table_gives_way(rows) -> None:
    """Eight numeric columns leave a text column less than its natural width at 80 columns (the
    variants table of `dcloop optimize`); a word of up to 8 letters still prints on one line."""
    headers = ["variant", "method", "accuracy %", "drop (pts)", "size KiB", "p50 ms", "p99 ms", "img/s @256"]
    table = [
        [run, " ".join(method), number, number, number, number, number, number]
        for run, method, number in rows
    ]
    with pytest.MonkeyPatch.context() as mp:
        out = _render(mp, _output.print_table, "t", headers, table)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    for _, method, _ in rows:
        for word in method:
            assert any(word in line.split() for line in lines), (word, out)


def test_iso_strings_lose_microseconds_and_paths_leave_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = (datetime(2026, 5, 1, 12, 0, 7, 123456, tzinfo=UTC) + timedelta(0)).isoformat()
    long_path = "/very/long/workspace/" + "x" * 80 + "/report.html"
    out = _render(monkeypatch, _output.print_mapping, "run", {"created_at": stamp, "report": long_path})
    assert "2026-05-01 12:00:07" in out and "123456" not in out
    assert f"report: {long_path}" in out.splitlines()
