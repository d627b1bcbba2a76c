"""The loop closes itself against a real server: `dcloop serve --follow-champion` in its own process
serves the champion over a loopback socket, shifted traffic and labels go through its HTTP routes, and
the controller alone turns the accuracy alert into a promoted challenger that the server switches to.
A second alert inside the cooldown starts nothing and the decision says why."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from loopkit import set_config

from dcloop._demo_traffic import TrafficClient, shift_images
from dcloop.loop import list_turns, watch
from dcloop.loop._controller import history

TOKEN = "s3cret-token"
COOLDOWN_S = 900.0


class StepClock:
    """Real time plus an offset that each wait between looks moves on by ``poll_s`` (no sleeping)."""

    def __init__(self, offset_s: float) -> None:
        self.offset = timedelta(seconds=offset_s)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def wait(self, seconds: float) -> bool:
        self.offset += timedelta(seconds=seconds)
        return False  # never stop early: the number of looks decides


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(condition, what: str, limit_s: float = 60.0):
    """Poll ``condition`` until it returns something truthy (bounded); returns that."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {limit_s:g} s")


@pytest.fixture
def server(champion_ws, tmp_path):
    """`dcloop serve --follow-champion` on a free loopback port; yields its base URL."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "DCLOOP_TOKEN": TOKEN}
    argv = ["serve", "--model", "animals@champion", "--port", str(port)]
    argv += ["--follow-champion", "--follow-every", "0.2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcloop.cli", *argv],
        cwd=champion_ws.root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        until(ready, "the server start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def http(server):
    """An HTTP client of the server over the loopback socket."""
    with httpx.Client(base_url=server, timeout=30.0) as client:
        yield client


def served_version(url: str) -> str | None:
    """The version /metrics says is served (`dcloop_model_info`): by every worker, when there are several
    (one line each, with its pid); None while they differ."""
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    found = set(re.findall(r'^dcloop_model_info\{[^}]*version="(\d+)"[^}]*\} 1\.0$', text, re.MULTILINE))
    return found.pop() if len(found) == 1 else None


def test_the_controller_alone_promotes_a_challenger_the_server_switches_to(
    champion_ws, world, server, http
) -> None:
    ws = set_config(champion_ws, "gate", min_improvement=-100.0, max_class_regression=100.0)
    ws = set_config(ws, "loop", triggers={"alert_held_s": 60.0}, policy={"cooldown_s": COOLDOWN_S})
    # over the socket, 8 images (~30 KB of JSON) a request
    client = TrafficClient(ws, "animals@champion", batch_size=8, token=TOKEN, _client=http)
    x, y = shift_images("negative", world["x"]), world["y"]
    stream, held_out = slice(0, 200), slice(200, None)

    _, ids, version = client.predict(x[stream])
    assert version == "animals@1" and served_version(server) == "1"
    assert client.label(ids, y[stream]) == 200
    before = float((client.predict(x[held_out])[0] == y[held_out]).mean())

    # the paused turn ended less than the cooldown ago: start the clock past it; each wait between
    # looks moves it a poll_s (30 s) on, so the alert has held 60 s at the third look
    clock = StepClock(COOLDOWN_S + 1)
    decisions = watch(ws, polls=4, clock=clock, wait=clock.wait)
    seen = [d for d in decisions if d.outcome == "alert_seen"]
    assert "low_accuracy:animals@1" in [d.figures["alert"] for d in seen]
    started, finished = [d for d in decisions if d.outcome not in ("alert_seen", "alert_cleared")]
    assert (started.trigger, started.outcome) == ("alert", "resumed")
    assert started.figures["alert"] == "low_accuracy:animals@1" and started.figures["held_s"] >= 60
    assert finished.outcome == "finished" and finished.figures["retrain_promoted"]
    assert finished.figures["champion_after"] == "animals@2"

    until(lambda: served_version(server) == "2", "the server's switch to animals@2")
    after_pred, _, version = client.predict(x[held_out])
    after = float((after_pred == y[held_out]).mean())
    assert version == "animals@2"
    assert after >= before + 0.3, (before, after)

    # a second alert about the new champion, inside the cooldown after the turn that promoted it
    twisted = shift_images("rotate", x[stream][:100])
    _, ids, _ = client.predict(twisted)
    client.label(ids, y[stream][:100])
    soon = StepClock(0.0)
    decisions = watch(ws, polls=4, clock=soon, wait=soon.wait)
    assert "low_accuracy:animals@2" in [d.figures["alert"] for d in decisions if d.outcome == "alert_seen"]
    assert {d.outcome for d in decisions} == {"alert_seen", "not_started"}, "the old alerts were acted on"
    [held] = [d for d in decisions if d.outcome == "not_started"]
    assert held.trigger == "alert" and held.figures["alert"].endswith(":animals@2")
    assert held.reason.startswith("not started: cooldown:") and f"of {COOLDOWN_S:g} s" in held.reason
    assert len(list_turns(ws)) == 1 and served_version(server) == "2"
    assert held in history(ws)
