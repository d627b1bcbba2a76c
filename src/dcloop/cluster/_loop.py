"""`dcloop loop --cluster`: each stage of a turn as a Ray task with that stage's resource request.

This process stays the loop's controller: ``run_loop`` walks the same step table, records each step
and decides what comes next; only the step itself runs elsewhere, through a step runner that submits
it as a Ray task asking for ``cluster.stages.<stage>`` (CPUs, GPUs, memory, custom resources). A
busy cluster queues the task; a request no node can meet, or a node that cannot write the
workspace, is refused before the turn starts. The task opens the same workspace (it must be on a folder every node reaches, with the store there too
or in PostgreSQL), rebuilds the step's context from the earlier steps' recorded outputs, runs the
step function under a JobMeter, and returns the output with its node and cost, which the turn
records with the step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dcloop.cluster._connect import connected
from dcloop.cluster._reach import check_reachable
from dcloop.cluster._status import check_fits
from dcloop.cluster._usage import open_shared_workspace, this_node
from dcloop.config import ClusterConfig
from dcloop.errors import DcloopError
from dcloop.workspace import Workspace

if TYPE_CHECKING:
    from dcloop.loop import Context, LoopTurn, Step, StepResult, StepRunner, Traffic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What one stage's task reserves, defaults resolved."""

    num_cpus: float
    num_gpus: float
    memory_gb: float
    resources: dict[str, float]

    def options(self) -> dict[str, Any]:
        """As Ray's task options (memory in bytes, and only when reserved)."""
        memory = {"memory": int(self.memory_gb * 1e9)} if self.memory_gb else {}
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": self.resources} | memory


def stage_request(settings: ClusterConfig, stage: str) -> Request:
    """``cluster.stages.<stage>`` with its defaults: train reserves what a training worker does, others 1 CPU."""
    from dcloop.config import StageResources

    stages = cast(dict[str, StageResources], settings.stages)  # keys are loop steps (validated)
    given = stages.get(stage) or StageResources()
    train = stage == "train"
    return Request(
        num_cpus=given.num_cpus if given.num_cpus is not None else settings.cpus_per_worker if train else 1.0,
        num_gpus=given.num_gpus if given.num_gpus is not None else settings.gpus_per_worker if train else 0.0,
        memory_gb=given.memory_gb,
        resources=dict(given.resources),
    )


def loop_on_cluster(
    workspace: Workspace,
    resume: bool = False,
    *,
    stop_after: str | None = None,
    traffic: Traffic | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    address: str | None = None,
) -> LoopTurn:
    """``dcloop.loop.run_loop`` (same arguments) with each stage a Ray task on the cluster."""
    from dcloop.loop import STEPS, run_loop

    settings = workspace.config.cluster
    requests = {stage: stage_request(settings, stage) for stage in STEPS}
    with connected(workspace, address):
        for stage, request in requests.items():
            check_fits(
                f"the {stage} stage",
                f"`cluster.stages.{stage}` in dcloop.yaml",
                request.num_cpus,
                request.num_gpus,
                memory_gb=request.memory_gb,
                custom=request.resources,
            )
        check_reachable(workspace, {})  # every node must reach the workspace (and its SQLite store)
        runner = _ray_runner(workspace, requests, settings.max_failures)
        return run_loop(
            workspace, resume, stop_after=stop_after, traffic=traffic, on_step=on_step, runner=runner
        )


def _ray_runner(workspace: Workspace, requests: dict[str, Request], retries: int) -> StepRunner:
    """A step runner that submits each step as a task and waits for it (Ray queues it while busy)."""
    import ray
    from ray.exceptions import RayTaskError

    from dcloop.loop._steps import recorded

    config = workspace.config.model_dump(mode="json")  # the driver's settings, overrides included

    def run(step: Step[Any], ctx: Context) -> tuple[Any, dict[str, Any] | None]:
        request = requests[step.name]
        log.info("turn %d: %s submitted as a Ray task asking for %s", ctx.turn, step.name, request.options())
        # retry only when the worker or its node is lost: a step's own error is final, as it is locally
        task = ray.remote(_stage_task).options(
            **request.options(), max_retries=retries, retry_exceptions=False, name=f"dcloop-{step.name}"
        )
        done = {kind: recorded(output) for kind, output in ctx.done.items()}
        ref = task.remote(str(workspace.root), config, ctx.turn, step.name, done, ctx.traffic)
        try:
            output, placement = ray.get(ref)
        except RayTaskError as exc:
            if isinstance(exc.cause, DcloopError):  # the step's own one-line error, as a local run shows it
                raise exc.cause from None
            raise
        return output, placement | {"request": request.options()}

    return run


def _stage_task(
    root: str,
    config: dict[str, Any],
    turn: int,
    name: str,
    done: dict[type, dict[str, Any]],
    traffic: Traffic | None,
) -> tuple[Any, dict[str, Any]]:
    """One stage on a cluster node: the step function the local turn runs, measured."""
    from dcloop.config import Config
    from dcloop.loop._steps import TABLE, Context, read_back
    from dcloop.meter import meter_for

    where = this_node()
    ws = open_shared_workspace(Path(root), Config.model_validate(config))
    ctx = Context(ws, turn, traffic, {kind: read_back(kind, outputs) for kind, outputs in done.items()})
    step = next(s for s in TABLE if s.name == name)
    with meter_for(ws) as meter:
        output = step.run(ctx)
    return output, {**where, "cost": meter.result().as_dict()}
