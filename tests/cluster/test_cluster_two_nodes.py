"""dcloop on a real two-node Ray cluster (loopback): status, Ray Train runs, refused requests, a node loss.

The node-loss test kills the second node, so it runs last in this module.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dcloop.cluster._train import attempts
from dcloop.config import TrainConfig
from dcloop.data import load_dataset
from dcloop.errors import ClusterError
from dcloop.store import runs as store_runs

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HEAD_LABEL, WORKER_LABEL = "dcloop_test_head", "dcloop_test_b"  # the nodes' custom resources (conftest)


def _recipe(epochs: int) -> TrainConfig:
    # seed-cnn has no batch norm and augmentation is off: 2 ranks then equal 1 rank at the same global batch
    recipe = TrainConfig(
        model="seed-cnn",
        epochs=epochs,
        batch_size=40,
        lr=3e-3,
        threads=1,
        schedule="cosine",
        precision="fp32",
    )
    recipe.augment.enabled = False
    return recipe


def test_status_lists_both_nodes_and_their_labels(cluster_workspace) -> None:
    from dcloop.cluster import cluster_status, connected

    with connected(cluster_workspace):
        found = cluster_status(cluster_workspace)
    labels = sorted(label for node in found["nodes"] for label in node["custom"])
    assert labels == sorted([HEAD_LABEL, WORKER_LABEL])
    assert found["totals"]["nodes"] == 2 and found["totals"]["cpus"] == 2
    assert [n["head"] for n in found["nodes"]] == [True, False]


def test_training_runs_on_both_nodes_and_matches_a_local_run(cluster_workspace) -> None:
    from dcloop.cluster import train_on_cluster
    from dcloop.train import train

    recipe = _recipe(epochs=2)
    local = train(cluster_workspace, recipe)
    run = train_on_cluster(cluster_workspace, recipe)
    assert run.status == "finished"
    info = run.lineage["cluster"]
    assert info["restarts"] == 0 and info["world_sizes"] == [2]
    assert len(info["nodes"]) == 2
    labels = {label for labels in info["node_labels"].values() for label in labels}
    assert labels == {HEAD_LABEL, WORKER_LABEL}  # one worker on each node
    cost = run.metrics["cost"]
    assert cost["workers_measured"] == 2
    assert (
        cost["cpu_s"] > cost["driver"]["cpu_s"] > 0
    )  # the workers' CPU time is counted, not only the driver's
    assert [e.epoch for e in store_runs.list_epochs(cluster_workspace.store, run.id)] == [1, 2]
    [workers] = attempts(Path(run.path), info["launch"])
    splits = load_dataset(cluster_workspace, run.dataset_id).splits
    steps = math.ceil(len(splits["train"]) / recipe.batch_size)
    assert [w["comm_calls"] for w in workers] == [2 * steps] * 2  # one allreduce a step on each rank
    assert all(0 < w["comm_s"] < run.metrics["train_s"] for w in workers)
    # two half-batches summed in another order round differently (on AVX2 kernels by up to 4e-5 after
    # two epochs); a rounding difference, not a training one: at most one test image may flip
    _same_weights(local, run, atol=2e-4, rtol=1e-3)
    assert abs(run.metrics["accuracy"] - local.metrics["accuracy"]) <= 1 / len(splits["test"]) + 1e-12


def test_one_worker_matches_a_local_run_and_records_its_timeline(cluster_workspace) -> None:
    from dcloop.cluster import train_on_cluster
    from dcloop.train import train

    recipe = _recipe(epochs=1)
    local = train(cluster_workspace, recipe)
    settings = cluster_workspace.config.cluster.model_copy(update={"num_workers": 1, "min_workers": None})
    run = train_on_cluster(cluster_workspace, recipe, settings=settings)
    info = run.lineage["cluster"]
    assert run.status == "finished" and info["world_sizes"] == [1]
    [[worker]] = attempts(Path(run.path), info["launch"])
    driver, marks = info["marks"], worker["marks"]
    order = [driver["called"], driver["connected"], driver["submitted"], marks["entered"], marks["imported"]]
    order += [marks["fit_start"], marks["first_step"], marks["fit_end"], driver["returned"]]
    assert order == sorted(order)
    assert "comm_s" not in worker  # one rank: no process group, no allreduce
    _same_weights(local, run)


def _same_weights(local, run, atol: float = 2e-5, rtol: float = 1e-4) -> None:
    a = load_file(str(Path(local.path) / "model.safetensors"))
    b = load_file(str(Path(run.path) / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=rtol)


def test_a_request_no_node_can_meet_is_refused_with_what_the_nodes_have(cluster_workspace) -> None:
    from dcloop.cluster import train_on_cluster

    settings = cluster_workspace.config.cluster.model_copy(update={"cpus_per_worker": 4.0})
    with pytest.raises(ClusterError, match=r"cannot hold 2 training workers: it needs 2 x 4 CPU .* 1 CPU"):
        train_on_cluster(cluster_workspace, _recipe(epochs=1), settings=settings)
    assert store_runs.list_runs(cluster_workspace.store) == []  # nothing was opened


def test_tune_workers_run_as_ray_tasks_and_share_one_study(cluster_workspace) -> None:
    from dcloop.cluster import tune_on_cluster

    ws = cluster_workspace
    ws.config.tune.epochs = 1
    ws.config.tune.pruner = "none"
    ws.config.train.model = "tiny-cnn"
    result = tune_on_cluster(ws, trials=3, workers=2)
    assert (result.complete, result.failed) == (3, 0)
    # pruned trials do not count toward the budget; each complete trial has one finished run
    finished = [r for r in store_runs.list_runs(ws.store, kind="trial") if r.status == "finished"]
    assert len(finished) == result.complete + result.pruned
    assert result.storage == f"sqlite:///{ws.state / 'optuna.db'}"


def test_losing_a_node_mid_training_resumes_from_the_last_checkpoint(two_nodes, cluster_workspace) -> None:
    from dcloop.cluster import train_on_cluster
    from dcloop.train._checkpoint import load_checkpoint

    store = cluster_workspace.store
    settings = cluster_workspace.config.cluster.model_copy(update={"min_workers": 1, "max_failures": 2})
    killed: list[int] = []

    def kill_after_first_epoch() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            runs = store_runs.list_runs(store)
            if runs and store_runs.list_epochs(store, runs[0].id):
                two_nodes.kill_node(WORKER_LABEL)  # the second node dies while epoch 2 trains
                killed.append(len(store_runs.list_epochs(store, runs[0].id)))
                return
            time.sleep(0.1)  # polling the store: the run lives in other processes

    watcher = threading.Thread(target=kill_after_first_epoch, daemon=True)
    watcher.start()
    run = train_on_cluster(cluster_workspace, _recipe(epochs=5), settings=settings)
    watcher.join(timeout=5)
    assert killed and killed[0] < 5, "the node was lost before training ended"
    info = run.lineage["cluster"]
    assert run.status == "finished" and info["restarts"] >= 1
    assert info["world_sizes"][0] == 2 and info["world_sizes"][-1] == 1  # resumed on the node left
    assert [e.epoch for e in store_runs.list_epochs(store, run.id)] == [1, 2, 3, 4, 5]
    for folder in sorted((Path(run.path) / "checkpoint").glob("epoch-*")):
        weights, _, state = load_checkpoint(folder)  # every checkpoint left behind is whole
        assert state["epoch"] == int(folder.name.removeprefix("epoch-")) and weights
    assert run.metrics["accuracy"] > 0.9
