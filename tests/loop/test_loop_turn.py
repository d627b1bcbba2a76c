"""A loop turn: its steps in order, recorded in the store; a paused or failed turn resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopkit import make_workspace, set_config
from typer.testing import CliRunner

from dcloop.errors import ConfigError, NotFoundError
from dcloop.loop import STEPS, list_turns, run_loop
from dcloop.store import runs as store_runs

runner = CliRunner()


@pytest.fixture
def source_ws(tmp_path: Path, world: dict):
    """A workspace with the small Animal-MNIST source recorded and nothing trained."""
    from dcloop.data import import_source

    ws = make_workspace(
        tmp_path / "ws", {"train": {"epochs": 1}}
    )  # these tests are about steps, not accuracy
    import_source(ws, str(world["source"]), name="animals")
    return ws


def test_a_paused_turn_resumes_and_skips_its_finished_steps(source_ws) -> None:
    paused = run_loop(source_ws, stop_after="register")
    assert paused.status == "paused"
    assert [s.name for s in paused.steps] == ["prepare", "train", "optimize", "register"]
    [turn] = list_turns(source_ws)
    assert turn.status == "paused" and [s.step for s in turn.steps] == list(STEPS[:4])

    resumed = run_loop(source_ws, resume=True)
    assert resumed.status == "finished" and resumed.number == paused.number
    assert [s.name for s in resumed.steps] == list(STEPS)
    assert [s.reused for s in resumed.steps] == [True] * 4 + [False] * 5
    assert resumed.outputs["run"] == paused.outputs["run"], "the finished training is reused, not redone"
    assert len(store_runs.list_runs(source_ws.store)) == 1
    assert resumed.outputs["champion"] == "animals@1"
    statuses = {s.name: s.status for s in resumed.steps}
    assert statuses["monitor"] == statuses["retrain"] == "skipped", (
        "no traffic yet: nothing to monitor or retrain"
    )
    assert "needs at least 20" in resumed.outputs["retrain_note"]
    assert resumed.report is not None and "loop turn 1" in resumed.report.read_text()
    with pytest.raises(NotFoundError, match="No unfinished loop turn"):
        run_loop(source_ws, resume=True)


def test_a_failed_turn_resumes_after_the_fix(source_ws) -> None:
    ws = set_config(source_ws, "optimize", student="no-such-model")
    ws = set_config(ws, "loop", optimize_methods=["onnx", "distill"])
    with pytest.raises(NotFoundError, match="no-such-model"):
        run_loop(ws)
    [failed] = list_turns(ws)
    assert failed.status == "failed" and "optimize" in failed.error
    assert [s.step for s in failed.steps] == ["prepare", "train"]
    ws = set_config(ws, "loop", optimize_methods=["onnx"])
    turn = run_loop(ws, resume=True, stop_after="gate")
    assert [s.reused for s in turn.steps] == [True, True, False, False, False]
    assert len(store_runs.list_runs(ws.store)) == 1
    assert turn.outputs["gate_passed"] and turn.outputs["champion"] == "animals@1"


@pytest.mark.slow
def test_a_second_turn_registers_a_new_version_and_the_gate_decides(source_ws) -> None:
    first = run_loop(source_ws, stop_after="gate")
    assert first.outputs["champion"] == "animals@1"
    ws = set_config(source_ws, "gate", min_improvement=50.0)
    second = run_loop(ws, stop_after="gate")  # the first turn stays paused; a new one starts
    assert second.number == first.number + 1
    assert second.outputs["registered"] == "animals@2"
    assert not second.outputs["gate_passed"] and "needs +50.00" in second.outputs["gate_reasons"][0]
    assert second.outputs["champion"] == "animals@1"


def test_until_must_name_a_step(source_ws) -> None:
    with pytest.raises(ConfigError, match="--until must be one of prepare, train"):
        run_loop(source_ws, stop_after="deploy-now")
    assert list_turns(source_ws) == []


def test_loop_cli(source_ws, monkeypatch) -> None:
    from dcloop.cli import app

    monkeypatch.chdir(source_ws.root)
    first = runner.invoke(app, ["loop", "--until", "prepare", "--format", "json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert data["status"] == "paused" and [s["name"] for s in data["steps"]] == ["prepare"]
    assert data["outputs"]["dataset_name"] == "animals"


KILL_AFTER_FIRST_EPOCH = """
import os, signal, sys, threading, time
from pathlib import Path
from dcloop.loop import run_loop
from dcloop.workspace import open_workspace
from dcloop.store import runs as store_runs

ws = open_workspace(Path(sys.argv[1]))

def kill_after_first_epoch():  # the process dies like `kill -9`: no cleanup, no status update
    while True:
        runs = store_runs.list_runs(ws.store)
        if runs and store_runs.list_epochs(ws.store, runs[0].id):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)

threading.Thread(target=kill_after_first_epoch, daemon=True).start()
run_loop(ws)
"""


def test_a_killed_turn_resumes_its_training_from_the_checkpoint(source_ws, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    source_ws = set_config(source_ws, "train", epochs=3)
    script = tmp_path / "kill.py"
    script.write_text(KILL_AFTER_FIRST_EPOCH)
    done = subprocess.run([sys.executable, str(script), str(source_ws.root)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    [killed] = list_turns(source_ws)
    assert killed.status == "running" and [s.step for s in killed.steps] == ["prepare"]
    [run] = store_runs.list_runs(source_ws.store)
    assert run.status == "running" and len(store_runs.list_epochs(source_ws.store, run.id)) >= 1

    turn = run_loop(source_ws, resume=True, stop_after="train")
    assert [s.reused for s in turn.steps] == [True, False]
    assert turn.outputs["run"] == run.id, "the interrupted run is resumed, not started again"
    [finished] = store_runs.list_runs(source_ws.store)
    assert finished.status == "finished"
    assert [e.epoch for e in store_runs.list_epochs(source_ws.store, run.id)] == [1, 2, 3]
