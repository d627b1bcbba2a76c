"""`dcloop loop --cluster` on a real two-node Ray cluster: every stage a task, recorded with its node and cost."""

from __future__ import annotations

import time

import pytest
import yaml

from dcloop.config import StageResources
from dcloop.errors import ClusterError
from dcloop.loop import STEPS, list_turns

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HEAD_LABEL, WORKER_LABEL = "dcloop_test_head", "dcloop_test_b"  # the nodes' custom resources (conftest)


SMALL_TURN = {  # one epoch of the tiny CNN and the ONNX export only: a short turn
    "train": {"model": "tiny-cnn", "epochs": 1, "threads": 1, "augment": {"enabled": False}},
    "loop": {"optimize_methods": ["onnx"]},
    "optimize": {"latency_runs": 10, "throughput_batches": 1},
}


def test_loop_cluster_runs_each_stage_as_a_task_and_records_its_node_and_cost(
    cluster_workspace, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from dcloop.cli import app
    from dcloop.cluster import cluster_status, connected

    ws = cluster_workspace
    raw = yaml.safe_load((ws.root / "dcloop.yaml").read_text(encoding="utf-8")) | SMALL_TURN
    raw["cluster"]["stages"] = {
        "register": {"resources": {WORKER_LABEL: 1}},  # pinned to the second node
        "gate": {"resources": {HEAD_LABEL: 1}},  # and this one to the head
    }
    (ws.root / "dcloop.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with connected(ws):
        found = {n["id"]: n for n in cluster_status(ws)["nodes"]}
    monkeypatch.chdir(ws.root)
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["loop", "--cluster"])
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    print(result.output)
    # each step's line and the table name the node that ran it
    assert "node" in result.output and any(f" on {n['address']}" in result.output for n in found.values())

    [record] = list_turns(ws)
    assert record.status == "finished" and [s.step for s in record.steps] == list(STEPS)
    assert record.outputs()["champion"] == "blobs@1"  # the same decisions as a local turn
    placed = {step.step: step.outputs["cluster"] for step in record.steps}
    for stage, where in placed.items():
        assert where["node_id"] in found, f"{stage} ran outside the cluster"
        assert where["address"] == found[where["node_id"]]["address"]
        cost = where["cost"]
        assert min(cost["cpu_s"], cost["wall_s"], cost["energy_j"], cost["cost_usd"]) >= 0, stage
        assert cost["energy_source"], stage  # rapl/nvml when counters exist, else "estimated"
    assert placed["train"]["cost"]["cpu_s"] > 0 and placed["train"]["cost"]["energy_j"] > 0
    assert WORKER_LABEL in placed["register"]["labels"]
    assert HEAD_LABEL in placed["gate"]["labels"]
    assert placed["train"]["request"]["num_cpus"] == ws.config.cluster.cpus_per_worker
    assert placed["register"]["request"]["resources"] == {WORKER_LABEL: 1.0}
    # the figures the README quotes: the nodes used and each stage's seconds on its node
    summary = {
        s: (sorted(found[w["node_id"]]["custom"]), round(w["cost"]["wall_s"], 1)) for s, w in placed.items()
    }
    print(
        f"\nloop --cluster: {seconds:.1f} s in all; per stage (node labels, seconds on the node): {summary}"
    )


def test_a_stage_no_node_can_hold_is_refused_before_the_turn_starts(cluster_workspace) -> None:
    from dcloop.cluster import loop_on_cluster

    ws = cluster_workspace
    ws.config.cluster.stages = {"optimize": StageResources(num_cpus=2)}
    with pytest.raises(
        ClusterError,
        match=r"cannot hold the optimize stage: it needs 1 x 2 CPU .*`cluster\.stages\.optimize`",
    ):
        loop_on_cluster(ws)
    assert list_turns(ws) == []  # nothing was started


def test_a_stage_that_fails_on_its_node_is_the_same_one_line_error_as_locally(cluster_workspace) -> None:
    from dcloop.cluster import loop_on_cluster
    from dcloop.errors import DcloopError

    ws = cluster_workspace
    ws.config.loop.source = str(ws.root / "no-such-source.npz")
    with pytest.raises(DcloopError, match="no-such-source") as caught:
        loop_on_cluster(ws)
    assert "\n" not in str(caught.value) and "Ray" not in type(caught.value).__name__
    [turn] = list_turns(ws)
    assert turn.status == "failed" and turn.error.startswith("prepare: ")  # resume it after the fix
