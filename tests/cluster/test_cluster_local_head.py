"""`dcloop cluster up/status/down` through the CLI: a real loopback head with token auth, stopped exactly."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_status_down(workspace, monkeypatch) -> None:
    from dcloop.cli import app
    from dcloop.cluster._local import _alive

    monkeypatch.chdir(workspace.root)
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    port = _free_port()
    up = runner.invoke(app, ["cluster", "up", "--num-cpus", "1", "--port", str(port), "--format", "json"])
    assert up.exit_code == 0, up.output
    head = json.loads(up.stdout)
    try:
        assert head["address"] == f"127.0.0.1:{port}"
        assert stat.S_IMODE(os.stat(head["token_path"]).st_mode) == 0o600
        again = runner.invoke(app, ["cluster", "up", "--port", str(port)])
        assert again.exit_code == 1 and "already runs" in str(again.exception)
        shown = runner.invoke(app, ["cluster", "status", "--format", "json"])
        assert shown.exit_code == 0, shown.output
        found = json.loads(shown.stdout)
        assert found["totals"]["nodes"] == 1 and found["totals"]["cpus"] == 1 and found["jobs"] == []
    finally:
        down = runner.invoke(app, ["cluster", "down"])
    assert down.exit_code == 0 and not _alive(head["pgid"])
    assert not (workspace.state / "cluster" / "head.json").exists()
