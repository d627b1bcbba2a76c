"""A run whose process died without closing it is failed, with the reason, when listed or resumed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from dcloop.config import TrainConfig
from dcloop.errors import TrainError
from dcloop.store import RunRecord
from dcloop.store import runs as store_runs
from dcloop.train import train
from dcloop.train._liveness import OWNER, current_owner, owner_gone
from dcloop.train._runs import list_runs, show_run

RECIPE = TrainConfig(model="tiny-cnn", epochs=2, batch_size=32, lr=0.01, threads=2)

# train() in a process that dies by a signal after its first epoch, as a native crash would
KILLED = """
import os, signal, sys
from pathlib import Path
from dcloop import config
from dcloop.config import TrainConfig
from dcloop.train import train
from dcloop.workspace import open_workspace

root = Path(sys.argv[1])
ws = open_workspace(root, config.load(root / "dcloop.yaml"))
recipe = TrainConfig.model_validate_json(sys.argv[2])
train(ws, recipe, on_epoch=lambda epoch, metrics: os.kill(os.getpid(), int(sys.argv[3])))
"""


def _record(workspace, owner: dict[str, object] | None) -> RunRecord:
    from dcloop.data import load_dataset

    run = RunRecord(
        id=os.urandom(16).hex(),
        kind="train",
        name="r",
        dataset_id=load_dataset(workspace).id,
        model="tiny-cnn",
        status="running",
        created_at=datetime.now(UTC),
        config={},
        lineage={OWNER: owner} if owner else {},
        metrics={},
        path=str(workspace.runs_dir / "r"),
    )
    return store_runs.add_run(workspace.store, run)


def _ended_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(child.stdout)


def test_owner_is_gone_only_when_its_process_on_this_host_is() -> None:
    me = current_owner()
    assert not owner_gone(me)
    assert owner_gone({**me, "started": me["started"] - 3600})  # the pid now belongs to another process
    assert owner_gone({**me, "pid": _ended_pid()})
    assert not owner_gone({**me, "pid": _ended_pid(), "host": socket.gethostname() + ".elsewhere"})
    assert not owner_gone(None)


def test_listing_fails_dead_runs_and_leaves_live_and_foreign_ones(blob_workspace) -> None:
    workspace = blob_workspace
    me = current_owner()
    dead = _record(workspace, {**me, "pid": _ended_pid()})
    live = _record(workspace, me)
    foreign = _record(workspace, {**me, "host": "another-host", "pid": 1})
    legacy = _record(workspace, None)
    rows = {r["run"]: r for r in list_runs(workspace)}
    assert rows[dead.id]["status"] == "failed"
    assert f"pid {dead.lineage[OWNER]['pid']}" in rows[dead.id]["error"]
    assert "start it again with `dcloop train`" in rows[dead.id]["error"]  # no checkpoint
    assert store_runs.get_run(workspace.store, dead.id).finished_at is not None
    assert [rows[r.id]["status"] for r in (live, foreign, legacy)] == ["running"] * 3
    assert show_run(workspace, live.id)["status"] == "running"


def test_resume_refuses_a_run_still_running_here(blob_workspace) -> None:
    workspace = blob_workspace
    live = _record(workspace, current_owner())
    with pytest.raises(TrainError, match=r"still running \(pid \d+"):
        train(workspace, RECIPE, resume=live.id)


@pytest.mark.parametrize(
    ("sig", "reason"),
    [
        (signal.SIGKILL, "ended without closing the run"),
        (
            signal.SIGSEGV,
            r"died of Segmentation fault in dcloop/train/\w+\.py line \d+ in \w+ \(stack in .*crash\.log\)",
        ),
    ],
)
def test_a_killed_training_process_leaves_a_failed_run_that_resumes(blob_workspace, sig, reason) -> None:
    script = textwrap.dedent(KILLED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PYTHONFAULTHANDLER", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(blob_workspace.root), RECIPE.model_dump_json(), str(int(sig))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == -sig, done.stderr
    (killed,) = store_runs.list_runs(blob_workspace.store)
    assert killed.status == "running" and killed.lineage[OWNER]["pid"] != os.getpid()
    (row,) = list_runs(blob_workspace)
    assert row["status"] == "failed" and re.search(reason, row["error"]), row["error"]
    assert f"--resume {killed.id[:12]}" in row["error"]  # epoch 1 was checkpointed
    resumed = train(blob_workspace, RECIPE, resume="latest")
    assert resumed.id == killed.id and resumed.status == "finished"
    assert resumed.lineage[OWNER]["pid"] == os.getpid()
