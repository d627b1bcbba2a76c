"""Tuning on a real loopback Ray cluster while a node dies mid-trial: no trial lost, none counted twice.

A third node joins the session's two-node cluster for this test only, and it is the one killed, so
the other cluster tests of the session keep both their nodes. A placement group reserves the second
node's one CPU while the study runs, so the two tune workers (1 CPU each) run one on the head and
one on the node that dies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dcloop.cluster._local import OBJECT_STORE_BYTES, start_node, stop_group
from dcloop.cluster._tune import COST_ATTR, NODE_ATTR
from dcloop.optimize._study import SURPLUS_ATTR
from dcloop.store import runs as store_runs

pytestmark = [pytest.mark.ray, pytest.mark.slow]
WORKER_LABEL, EXTRA_LABEL = "dcloop_test_b", "dcloop_test_c"  # the second node's (conftest), this test's
TRIALS = 4
POLL_S = 0.5


@pytest.fixture
def extra_node(two_nodes: Any) -> Iterator[Any]:
    """A 1-CPU node joined to the session's cluster for one test, stopped (its whole group) after it."""
    folder = Path(f"/tmp/dcloop-x{secrets.token_hex(3)}")  # short: Ray's socket paths must fit 107 bytes
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    args = ["start", "--address", two_nodes.address, "--temp-dir", str(folder / "c")]
    args += ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    args += ["--object-store-memory", str(OBJECT_STORE_BYTES), "--resources", json.dumps({EXTRA_LABEL: 1})]
    pgid = start_node(args, env, folder / "c.log")
    try:
        # raylet_pid and kill_node find its raylet by this process group
        yield dataclasses.replace(two_nodes, groups={EXTRA_LABEL: pgid})
    finally:
        stop_group(pgid)
        _until_counted_dead(two_nodes.address, EXTRA_LABEL)
        shutil.rmtree(folder, ignore_errors=True)


def _until_counted_dead(address: str, label: str, seconds: float = 180.0) -> None:
    """Return once the cluster no longer counts the node with ``label`` alive. Its GCS marks a lost node
    dead only after several failed health checks, and the session's later tests count the nodes."""
    import ray

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
    try:
        deadline = time.monotonic() + seconds
        while _node_id(label) is not None:
            assert time.monotonic() < deadline, (
                f"the cluster still counts node {label} alive after {seconds:.0f} s"
            )
            time.sleep(POLL_S)  # between polls of the GCS for a state it reaches on its own schedule
    finally:
        ray.shutdown()


def _node_id(label: str) -> str | None:
    import ray

    return next((n["NodeID"] for n in ray.nodes() if n["Alive"] and label in n["Resources"]), None)


def _kill_mid_trial(
    workspace: Any, url: str, study: str, node_id: str, kill_node: Callable[[], None], killed: list[int]
) -> None:
    """Lose the node (its raylet and workers) once a trial it runs is training (its run exists), noting
    the trial."""
    import optuna
    from optuna.trial import TrialState

    from dcloop.optimize._study import open_storage

    deadline = time.monotonic() + 500
    while time.monotonic() < deadline:
        names = {r.name for r in store_runs.list_runs(workspace.store, kind="trial")}
        if names:  # the study exists once a trial trains
            running = optuna.load_study(study_name=study, storage=open_storage(url, 2)).get_trials(
                deepcopy=False, states=(TrialState.RUNNING,)
            )
            mine = [t for t in running if t.user_attrs.get(NODE_ATTR) == node_id]
            if mine and f"{study}#{mine[0].number}" in names:
                kill_node()
                killed.append(mine[0].number)
                return
        time.sleep(0.2)  # polling the stores: the trials run in other processes


def test_a_node_lost_mid_trial_loses_no_trial_and_counts_none_twice(
    extra_node: Any, cluster_workspace: Any
) -> None:
    import optuna
    import ray
    from optuna.trial import TrialState

    from dcloop.cluster import connected, tune_on_cluster

    ws = cluster_workspace
    ws.config.train.model = "tiny-cnn"
    ws.config.tune.epochs, ws.config.tune.pruner, ws.config.tune.heartbeat_s = 2, "none", 2
    name, url = "fault", f"sqlite:///{ws.state / 'optuna.db'}"
    started = time.monotonic()
    killed: list[int] = []
    with connected(ws):
        extra = _node_id(EXTRA_LABEL)
        assert extra is not None
        if (
            _node_id(WORKER_LABEL) is not None
        ):  # the second node is alive: reserve its CPU, so no worker lands there
            hold = ray.util.placement_group([{"CPU": 1, WORKER_LABEL: 1}])
            ray.get(hold.ready(), timeout=300)
        args = (ws, url, name, extra, lambda: extra_node.kill_node(EXTRA_LABEL), killed)
        watcher = threading.Thread(target=_kill_mid_trial, args=args, daemon=True)
        watcher.start()
        result = tune_on_cluster(ws, trials=TRIALS, workers=2, study=name)
        watcher.join(timeout=5)
    seconds = time.monotonic() - started
    assert killed, "no trial ran on the extra node, so nothing was killed mid-trial"

    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert (result.complete, len(complete)) == (TRIALS, TRIALS)
    # no number lost: every trial ended, complete or failed (none left running or waiting)
    assert [t.number for t in trials] == list(range(len(trials)))
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.FAIL}
    lost = trials[killed[0]]
    assert lost.state == TrialState.FAIL and lost.user_attrs[NODE_ATTR] == extra
    # the killed trial was asked again with its parameters, and that retry completed once
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retries) == 1 and retries[0].params == lost.params
    assert retries[0].user_attrs[NODE_ATTR] != extra
    # nothing else failed but surplus asks: only the lost trial is a counted failure
    assert [
        t.number for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(SURPLUS_ATTR)
    ] == [lost.number]
    keys = [(t.number, json.dumps(t.params, sort_keys=True)) for t in complete]
    assert len(set(keys)) == len(keys)
    # one finished run per complete trial, and the run each trial names is that one
    finished = [r for r in store_runs.list_runs(ws.store, kind="trial") if r.status == "finished"]
    assert sorted(r.name for r in finished) == sorted(f"{name}#{t.number}" for t in complete)
    assert {t.user_attrs["run_id"] for t in complete} == {r.id for r in finished}
    # the cost is summed over the driver and both tasks (the one re-run after the loss included)
    cost = study.user_attrs[COST_ATTR]
    assert cost["pieces"] == 2 and cost["launches"] == 1 and extra not in cost["nodes"]
    assert cost["cpu_s"] > cost["driver"]["cpu_s"] > 0 and cost["energy_j"] > 0
    print(f"tune with a node lost: {seconds:.0f} s, {len(trials)} trials asked for {TRIALS} complete")
