"""The loop controller: a trigger starts the same turn `dcloop loop` runs, under the model's lease; every
decision is recorded, a held-back trigger with its reason; SIGTERM leaves the turn for the next start."""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime, timedelta

from loopkit import make_workspace, set_config

from dcloop._demo_traffic import shift_images
from dcloop.deploy._registry import get_model_version
from dcloop.loop import list_turns
from dcloop.loop._controller import history, request_turn, watch


class Clock:
    """Real time plus an offset the test moves (the store's own records use real time)."""

    def __init__(self, offset: timedelta = timedelta()) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def send_labelled(traffic, world, start: int, stop: int) -> int:
    x, y = shift_images("negative", world["x"][start:stop]), world["y"][start:stop]
    _, ids, _ = traffic.predict(x)
    return traffic.label(ids, y)


def test_new_labels_start_a_turn_and_a_second_burst_inside_the_cooldown_says_why_not(
    champion_ws, traffic, world
) -> None:
    ws = set_config(champion_ws, "gate", min_improvement=-100.0, max_class_regression=100.0)
    ws = set_config(ws, "loop", triggers={"min_new_labels": 100}, policy={"cooldown_s": 3600.0})
    send_labelled(traffic, world, 0, 60)
    assert watch(ws, polls=1, clock=Clock(timedelta(hours=2))) == [], "60 new labels < 100: nothing fires"
    send_labelled(traffic, world, 60, 200)

    started, finished = watch(ws, polls=1, clock=Clock(timedelta(hours=2)))
    assert (started.trigger, started.outcome) == ("labels", "resumed"), "turn 1 was paused: it is finished"
    assert started.figures == {"new_labels": 200, "needed": 100}
    assert finished.outcome == "finished" and finished.figures["turn"] == 1
    assert finished.figures["retrain_promoted"] and finished.figures["champion_after"] == "animals@2"
    assert finished.reason == "challenger animals@2 promoted" and finished.turn_id == list_turns(ws)[0].id
    assert finished.figures["wall_s"] > 0 and finished.figures["cpu_s"] > 0
    assert get_model_version(ws, "animals@champion").ref == "animals@2"
    [turn] = list_turns(ws)
    assert turn.status == "finished"

    send_labelled(traffic, world, 200, 320)
    clock = Clock()
    [held] = watch(ws, polls=3, clock=clock, wait=lambda s: False)
    assert (held.trigger, held.outcome) == ("labels", "not_started")
    assert (
        held.reason.startswith("not started: cooldown:")
        and "of 3600 s since the last turn ended" in held.reason
    )
    assert held.figures == {"new_labels": 120, "needed": 100}
    assert len(list_turns(ws)) == 1, "three looks inside the cooldown: no turn, one decision recorded"
    assert [d.outcome for d in history(ws)] == ["resumed", "finished", "not_started"]


def test_sigterm_stops_after_the_step_in_progress_and_the_next_start_resumes(champion_ws) -> None:
    request_turn(champion_ws, "check the new server build")
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, unless an earlier test in this process left one

    def traffic(ws, model_ref):  # called by the feedback step: SIGTERM arrives while it runs
        signal.raise_signal(signal.SIGTERM)
        return {}

    started, stopped = watch(champion_ws, polls=5, wait=lambda s: False, traffic=traffic)
    assert (started.trigger, started.outcome) == ("request", "resumed")
    assert started.figures == {"reason": "check the new server build"}
    assert stopped.outcome == "stopped" and stopped.reason.startswith("stopped after feedback")
    [turn] = list_turns(champion_ws)
    assert turn.status == "running" and [s.step for s in turn.steps][-1] == "feedback"
    assert signal.getsignal(signal.SIGTERM) is before, "the old handler is back"

    resumed, finished = watch(champion_ws, polls=1)
    assert (resumed.trigger, resumed.outcome) == ("resume", "resumed")
    assert finished.outcome == "finished" and finished.figures["turn"] == 1
    [turn] = list_turns(champion_ws)
    assert turn.status == "finished" and [s.step for s in turn.steps][-2:] == ["monitor", "retrain"]
    assert watch(champion_ws, polls=1) == [], "the request was handled: nothing more to do"


def test_two_controllers_on_one_postgresql_store_run_one_turn(tmp_path, world, pg_url) -> None:
    from dcloop.data import import_source

    ws = make_workspace(tmp_path / "ws", {"store": {"url": pg_url}, "train": {"epochs": 1}})
    import_source(ws, str(world["source"]), name="animals")
    request_turn(ws, "first model")
    barrier = threading.Barrier(2)
    results: dict[str, list] = {}

    def controller(name: str) -> None:
        barrier.wait()
        results[name] = watch(ws, polls=1, owner=name)

    threads = [threading.Thread(target=controller, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [turn] = list_turns(ws)
    assert turn.status == "finished"
    outcomes = sorted(tuple(d.outcome for d in decisions) for decisions in results.values())
    assert outcomes == [("not_started",), ("started", "finished")], results
    [refused] = next(d for d in results.values() if len(d) == 1)
    assert refused.reason.startswith("not started: lease held by"), refused.reason
    assert refused.figures == {"reason": "first model"}


def test_loop_cli_requests_a_turn_refuses_while_the_lease_is_held_and_shows_history(
    champion_ws, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from dcloop.cli import app
    from dcloop.store import controller as q

    monkeypatch.chdir(champion_ws.root)
    runner = CliRunner()
    asked = runner.invoke(app, ["loop", "--request", "new labels from the night shift"])
    assert asked.exit_code == 0, asked.output
    assert [r.reason for r in q.pending_requests(champion_ws.store, "animals")] == [
        "new labels from the night shift"
    ]
    empty = runner.invoke(app, ["loop", "history"])
    assert empty.exit_code == 0 and "no decisions yet" in empty.output

    q.acquire_lease(champion_ws.store, "animals", "other-host:1:abc", 600, datetime.now(UTC))
    refused = runner.invoke(app, ["loop", "--resume"])
    assert refused.exit_code == 1
    assert "lease held by other-host:1:abc" in str(refused.exception)
    [turn] = list_turns(champion_ws)
    assert turn.status == "paused", "the person's turn did not run while a controller held the lease"
    [held] = watch(champion_ws, polls=1)
    assert held.reason.startswith("not started: lease held by other-host:1:abc")

    q.release_lease(champion_ws.store, "animals", "other-host:1:abc")
    done = runner.invoke(app, ["loop", "--resume", "--until", "deploy"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["loop", "history", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    held, started, paused = json.loads(shown.output)
    assert held["trigger"] == "request" and held["outcome"] == "not_started"
    assert (started["trigger"], started["outcome"]) == ("manual", "started")
    assert (paused["outcome"], paused["reason"]) == ("paused", "turn 1 paused")
    assert paused["turn_id"] == turn.id and paused["figures"]["wall_s"] > 0


KILLED_MID_TURN = """
import os, signal, sys
from pathlib import Path
from dcloop.loop._controller import request_turn, watch
from dcloop.workspace import open_workspace

ws = open_workspace(Path(sys.argv[1]))
request_turn(ws, "before the kill")

def die(ws, model_ref):  # called by the feedback step: the controller dies like `kill -9`
    os.kill(os.getpid(), signal.SIGKILL)

watch(ws, polls=1, traffic=die)
"""


def test_a_controller_killed_mid_turn_is_resumed_by_the_next_one(champion_ws, tmp_path) -> None:
    import subprocess
    import sys

    from dcloop.store import controller as q

    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_TURN)
    done = subprocess.run(
        [sys.executable, str(script), str(champion_ws.root)], capture_output=True, text=True
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    [turn] = list_turns(champion_ws)
    assert turn.status == "running" and [s.step for s in turn.steps][-1] == "deploy"
    dead = q.get_lease(champion_ws.store, "animals")
    assert dead is not None and dead.expires_at > datetime.now(UTC), "a dead holder's lease outlives it"

    resumed, finished = watch(champion_ws, polls=1)  # the dead holder's lease has not expired yet
    assert (resumed.trigger, resumed.outcome) == ("resume", "resumed")
    assert finished.outcome == "finished" and finished.turn_id == turn.id
    [turn] = list_turns(champion_ws)
    assert turn.status == "finished" and [s.step for s in turn.steps][-3:] == [
        "feedback",
        "monitor",
        "retrain",
    ]
    assert q.get_lease(champion_ws.store, "animals") is None, "released after the turn"
    assert [d.outcome for d in history(champion_ws)] == ["resumed", "resumed", "finished"]


def test_an_alert_held_long_enough_starts_a_turn_and_a_restart_keeps_counting(
    champion_ws, traffic, world
) -> None:
    ws = set_config(champion_ws, "gate", min_improvement=-100.0, max_class_regression=100.0)
    ws = set_config(ws, "loop", triggers={"alert_held_s": 300.0})
    send_labelled(traffic, world, 0, 200)  # negatives: the champion's live accuracy collapses

    seen = watch(ws, polls=2, clock=Clock(timedelta(hours=2)), wait=lambda s: False)
    assert {(d.trigger, d.outcome) for d in seen} == {("alert", "alert_seen")}
    assert [d.figures["alert"] for d in seen] == [
        "low_accuracy:animals@1",
        "pixel_drift:animals@1",
        "embedding_drift:animals@1",
    ], "each alert recorded once, though the controller looked twice"
    assert (
        seen[0].reason.startswith("animals@1: accuracy") and "on 200 labelled predictions" in seen[0].reason
    )
    assert list_turns(ws)[0].status == "paused", "held 0 s of 300: no turn yet"

    later = Clock(timedelta(hours=2, seconds=301))  # a new controller: the sighting is read back
    started, finished = watch(ws, polls=1, clock=later)
    assert (started.trigger, started.outcome) == ("alert", "resumed")
    assert started.figures["alert"] == "low_accuracy:animals@1" and started.figures["held_s"] >= 300
    assert finished.figures["champion_after"] == "animals@2"
    assert get_model_version(ws, "animals@champion").ref == "animals@2"


def test_a_challenger_the_gate_refuses_leaves_the_champion_serving(champion_ws, traffic, world) -> None:
    """A controller-started turn goes through the same gate: a refusal is recorded with its reasons."""
    ws = set_config(champion_ws, "gate", min_improvement=50.0)  # no challenger can clear +50 points
    ws = set_config(ws, "loop", triggers={"min_new_labels": 100})
    send_labelled(traffic, world, 0, 200)

    started, finished = watch(ws, polls=1, clock=Clock(timedelta(hours=2)))
    assert started.trigger == "labels" and finished.outcome == "finished"
    assert finished.figures["retrain_promoted"] is False
    assert "refused" in finished.reason and "needs +50.00" in finished.reason
    assert get_model_version(ws, "animals@champion").ref == "animals@1", "the champion keeps serving"
    assert get_model_version(ws, "animals@challenger").ref == "animals@2"
