"""Which OpenMP wait policy the CLI leaves to each command: set before torch loads, so checked in env.

Training keeps OpenMP's own default (its threads spin briefly between the many small kernels of a step;
sleeping at once made a second thread slower than none); the server keeps idle threads asleep. A value
the user set is never replaced.
"""

from __future__ import annotations

import os
import sys

import pytest
from typer.testing import CliRunner

from dcloop.cli import app, main
from dcloop.errors import ConfigError


def test_training_commands_leave_openmp_its_own_wait_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(sys, "argv", ["dcloop", "train", "--epochs", "-1"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code != 0  # refused before any training: the policy is read at start-up
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_serve_keeps_idle_threads_asleep_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, preset: str | None, expected: str
) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    if preset is not None:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    result = CliRunner().invoke(app, ["serve", "--replicas", "2"])  # refused: --replicas needs --cluster
    assert isinstance(result.exception, ConfigError)
    assert os.environ["OMP_WAIT_POLICY"] == expected
