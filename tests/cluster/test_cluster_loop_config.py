"""`loop --cluster` without a cluster: per-stage requests from dcloop.yaml, the up-front refusal against a
given view of the nodes, and the step runner that records where a step ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest

from dcloop import config
from dcloop.cluster._loop import stage_request
from dcloop.cluster._status import Node, check_fits
from dcloop.errors import ClusterError, ConfigError
from dcloop.loop import STEPS, list_turns, run_loop

NODES = [
    Node("a" * 16, "10.0.0.1", True, 4.0, 0.0, 16.0, 4.0, 0.0, {"dcloop_test_head": 1.0}),
    Node("b" * 16, "10.0.0.2", False, 2.0, 1.0, 8.0, 2.0, 1.0, {"gpu_box": 1.0}),
]


def _load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "dcloop.yaml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def test_the_config_names_exactly_the_loop_steps() -> None:
    assert get_args(config.LoopStep) == STEPS


def test_an_unknown_stage_is_one_error_naming_it(tmp_path: Path) -> None:
    text = "cluster:\n  stages:\n    trian: {num_cpus: 2}\n    gate: {num_gpus: -1}\n"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    assert "`cluster.stages.trian` in" in message and "'train'" in message and "Got 'trian'" in message
    assert "`cluster.stages.gate.num_gpus` in" in message  # every problem at once


def test_stage_requests_default_to_one_cpu_and_train_to_a_training_worker(tmp_path: Path) -> None:
    text = (
        "cluster:\n  cpus_per_worker: 3\n  gpus_per_worker: 0.5\n  stages:\n"
        "    optimize: {num_cpus: 2, memory_gb: 1.5}\n    gate: {resources: {gpu_box: 1}}\n"
    )
    settings = _load(tmp_path, text).cluster
    train, prepare = stage_request(settings, "train"), stage_request(settings, "prepare")
    assert (train.num_cpus, train.num_gpus) == (3.0, 0.5)
    assert (prepare.num_cpus, prepare.num_gpus, prepare.memory_gb, prepare.resources) == (1.0, 0.0, 0.0, {})
    optimize = stage_request(settings, "optimize").options()
    assert optimize == {"num_cpus": 2.0, "num_gpus": 0.0, "resources": {}, "memory": 1_500_000_000}
    assert stage_request(settings, "gate").options()["resources"] == {"gpu_box": 1.0}
    assert "memory" not in stage_request(settings, "gate").options()  # no reservation asked


@pytest.mark.parametrize(
    ("request_", "fits"),
    [
        ({"cpus": 4.0, "gpus": 0.0}, True),
        ({"cpus": 2.0, "gpus": 1.0}, True),  # only node b has the GPU, and 2 CPUs
        ({"cpus": 3.0, "gpus": 1.0}, False),
        ({"cpus": 1.0, "gpus": 0.0, "custom": {"gpu_box": 1.0}}, True),
        ({"cpus": 3.0, "gpus": 0.0, "custom": {"gpu_box": 1.0}}, False),  # pinned to b, which has 2
        ({"cpus": 1.0, "gpus": 0.0, "custom": {"no_such_label": 1.0}}, False),
        ({"cpus": 1.0, "gpus": 0.0, "memory_gb": 12.0}, True),
        ({"cpus": 1.0, "gpus": 0.0, "memory_gb": 20.0}, False),
    ],
)
def test_check_fits_weighs_every_resource_on_one_node(request_: dict[str, Any], fits: bool) -> None:
    cpus, gpus = request_.pop("cpus"), request_.pop("gpus")
    if fits:
        check_fits("the gate stage", "`cluster.stages.gate`", cpus, gpus, found=NODES, **request_)
        return
    with pytest.raises(
        ClusterError, match=r"cannot hold the gate stage: it needs 1 x .*`cluster.stages.gate`"
    ):
        check_fits("the gate stage", "`cluster.stages.gate`", cpus, gpus, found=NODES, **request_)


def test_the_refusal_names_the_setting_and_what_each_node_has() -> None:
    with pytest.raises(ClusterError) as caught:
        check_fits(
            "the gate stage", "`cluster.stages.gate`", 1.0, 0.0, custom={"dcloop_test_b": 1.0}, found=NODES
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "it needs 1 x 1 CPU + 1 dcloop_test_b (`cluster.stages.gate`)" in message
    assert "10.0.0.1 (aaaaaaaa) 4 CPU 0 GPU 16 GB dcloop_test_head=1" in message
    assert "10.0.0.2 (bbbbbbbb) 2 CPU 1 GPU 8 GB gpu_box=1" in message


def test_a_runner_places_the_step_and_the_turn_records_where(workspace, tmp_path: Path) -> None:
    """The step runner is the one switch: what it returns besides the output is recorded with the step,
    read back on resume, and kept out of the step outputs the turn merges."""
    from dcloop.data import import_source

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, size=(40, 1, 8, 8)).astype(np.uint8), np.arange(40) % 2
    np.savez(tmp_path / "tiny.npz", x=x, y=y, classes=np.array(["cat", "dog"]))
    import_source(workspace, str(tmp_path / "tiny.npz"), name="tiny")
    ran: list[str] = []

    def elsewhere(step: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        ran.append(step.name)
        return step.run(ctx), {"node_id": "n" * 16, "address": "10.0.0.9", "cost": {"cpu_s": 0.25}}

    paused = run_loop(workspace, stop_after="prepare", runner=elsewhere)
    assert ran == ["prepare"]
    [step] = paused.steps
    assert step.placement is not None and step.placement["address"] == "10.0.0.9"
    assert "cluster" not in step.outputs and step.outputs["dataset_name"] == "tiny"
    [turn] = list_turns(workspace)
    assert turn.steps[0].outputs["cluster"]["node_id"] == "n" * 16  # recorded with the step

    again = run_loop(workspace, resume=True, stop_after="prepare", runner=elsewhere)
    assert ran == ["prepare"], "the finished step is reused, not run again"
    assert again.steps[0].reused and again.steps[0].placement == step.placement
    assert again.steps[0].outputs == step.outputs
