"""Cluster jobs refused up front on a real two-node loopback cluster, each in one line naming the setting:
a tune worker no node can hold, a folder no node has, and a cluster of another Ray version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dcloop.errors import ClusterError
from dcloop.store import runs as store_runs

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _tiny(ws: Any) -> Any:
    ws.config.train.model = "tiny-cnn"
    ws.config.tune.epochs, ws.config.tune.pruner = 1, "none"
    return ws


def test_a_tune_worker_no_node_can_hold_is_refused_before_the_study_starts(cluster_workspace) -> None:
    from dcloop.cluster import tune_on_cluster

    ws = _tiny(cluster_workspace)
    ws.config.cluster.cpus_per_worker = 4.0
    with pytest.raises(
        ClusterError,
        match=r"cannot hold a tune worker: it needs 1 x 4 CPU \(cluster.cpus_per_worker\).* 1 CPU",
    ):
        tune_on_cluster(ws, trials=2, workers=2)
    assert not (ws.state / "optuna.db").exists() and store_runs.list_runs(ws.store) == []


def test_a_study_folder_the_nodes_lack_is_named_with_the_node(cluster_workspace, tmp_path) -> None:
    from dcloop.cluster import tune_on_cluster

    missing = tmp_path / "not-mounted"
    with pytest.raises(
        ClusterError, match=rf"^`tune.storage` {missing} does not exist on node \S+ \(\w{{8}}\)"
    ):
        tune_on_cluster(_tiny(cluster_workspace), trials=2, storage=f"sqlite:///{missing}/optuna.db")
    assert not missing.exists() and store_runs.list_runs(cluster_workspace.store) == []


def test_a_storage_path_the_nodes_lack_is_named_with_the_node(cluster_workspace, tmp_path) -> None:
    from dcloop.cluster import train_on_cluster
    from dcloop.config import TrainConfig

    missing = tmp_path / "not-mounted"
    settings = cluster_workspace.config.cluster.model_copy(update={"storage_path": str(missing)})
    with pytest.raises(
        ClusterError, match=rf"^`cluster.storage_path` {missing} does not exist on node \S+ \(\w{{8}}\)"
    ):
        train_on_cluster(cluster_workspace, TrainConfig(model="tiny-cnn", epochs=1), settings=settings)
    assert store_runs.list_runs(cluster_workspace.store) == []  # refused before a run was opened


@pytest.fixture
def older_cluster(two_nodes: Any) -> Iterator[dict[str, str]]:
    """The cluster's recorded Ray version (GCS metadata, what ray.init checks) set to an older one for
    one test, and put back after it."""
    from ray._common.usage import usage_constants
    from ray._private import ray_constants
    from ray._raylet import GcsClient  # type: ignore[attr-defined]

    client = GcsClient(address=two_nodes.address)
    key, space = usage_constants.CLUSTER_METADATA_KEY, ray_constants.KV_NAMESPACE_CLUSTER
    saved = client.internal_kv_get(key, namespace=space)
    older = {**json.loads(saved), "ray_version": "2.9.3"}
    client.internal_kv_put(key, json.dumps(older).encode(), overwrite=True, namespace=space)
    try:
        yield older
    finally:
        client.internal_kv_put(key, saved, overwrite=True, namespace=space)


def test_a_cluster_of_another_ray_version_is_one_line_naming_both(
    older_cluster: dict[str, str], cluster_workspace, two_nodes
) -> None:
    import ray

    from dcloop.cluster import connected

    with pytest.raises(ClusterError) as refused, connected(cluster_workspace):
        pass
    line = str(refused.value)
    assert "\n" not in line and f"'{two_nodes.address}' (`cluster.address` in dcloop.yaml)" in line
    assert (
        f"runs Ray 2.9.3 on Python {older_cluster['python_version']}, but this machine has Ray {ray.__version__}"
        in line
    )
    assert not ray.is_initialized()
