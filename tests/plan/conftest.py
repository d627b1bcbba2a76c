"""Helpers of the planner tests: run the real CLI entry point in-process."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path):
    """Run `dcloop ARGS` through dcloop.cli.main (one-line errors, exit codes) in an empty folder."""
    from dcloop.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DCLOOP_WORKSPACE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dcloop", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        code = exit_info.value.code
        return (code if isinstance(code, int) else 1), out.out, out.err

    return run
