"""`dcloop tune --cluster`: the study's workers as Ray tasks, Optuna still the search and its RDB the record.

Each task runs ``run_worker``, the function a local tune worker process runs: it asks the study (in
the storage every node reaches: the workspace's SQLite file on a shared folder, or PostgreSQL) for
trials until the budget is met. A task lost with its node is run again by Ray; the trial it was
running stops sending heartbeats, is failed by Optuna and asked again with the same parameters, so
no trial is lost or counted twice (the budget counts finished trials only). Each trial records the
node that ran it (user attribute ``ray_node``).

Every task measures itself (CPU time, energy, money: dcloop's JobMeter on its node); the study's
user attribute ``dcloop_cluster_cost`` holds those summed with the driver's, over every launch. A task
lost with its node cannot report its own measure; the trials it finished keep theirs on their runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dcloop.cluster._connect import connected
from dcloop.cluster._cost import SUMMED, sum_costs
from dcloop.cluster._reach import check_reachable
from dcloop.cluster._status import check_fits
from dcloop.errors import DcloopError, TrainError
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
TASK_RETRIES = 3  # a task whose node is lost runs again this many times
NODE_ATTR = "ray_node"  # the trial's user attribute naming the node that ran it
COST_ATTR = "dcloop_cluster_cost"  # the study's user attribute with the summed cost of its launches


def tune_on_cluster(workspace: Workspace, *, address: str | None = None, **options: Any) -> Any:
    """``dcloop.optimize.tune`` (same options) with each worker a Ray task on the cluster."""
    from dcloop.meter import meter_for
    from dcloop.optimize import tune

    cpus = workspace.config.cluster.cpus_per_worker
    tasks: list[dict[str, Any]] = []
    used: dict[str, Any] = {}
    with connected(workspace, address), meter_for(workspace) as meter:
        check_fits("a tune worker", "cluster.cpus_per_worker", cpus, workspace.config.cluster.gpus_per_worker)
        check_reachable(
            workspace,
            {"`tune.storage`": _sqlite_folder(options.get("storage") or workspace.config.tune.storage)},
        )

        def spawn(
            ws: Workspace,
            config: dict[str, Any],
            url: str,
            workers: int,
            deadline: float | None,
            resume: bool,
        ) -> None:
            used["url"] = url
            tasks.extend(_run_tasks(ws, config, url, workers, deadline, cpus))

        result = tune(workspace, spawn=spawn, **options)
    cost = sum_costs(meter.result().as_dict(), [t["cost"] for t in tasks])
    _record_cost(
        result.study,
        used["url"],
        workspace.config.tune.heartbeat_s,
        cost | {"nodes": sorted({t["node"] for t in tasks})},
    )
    return result


def _sqlite_folder(url: str | None) -> str | None:
    """The folder of a SQLite study storage given by flag (PostgreSQL: None, nothing to reach)."""
    if url is None or not url.startswith("sqlite:///"):
        return None
    return str(Path(url.removeprefix("sqlite:///")).parent)


def _run_tasks(
    ws: Workspace, config: dict[str, Any], url: str, workers: int, deadline: float | None, cpus: float
) -> list[dict[str, Any]]:
    """Run the workers as Ray tasks and wait; each task's answer (its node, cost and error, if any)."""
    import ray

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        raise TrainError(f"The study storage {url!r} must be an absolute path every node reaches.")
    task = ray.remote(num_cpus=cpus, max_retries=TASK_RETRIES, retry_exceptions=False)(_worker_task)
    jobs = [
        {"root": str(ws.root), "config": config, "url": url, "index": i, "deadline": deadline}
        for i in range(workers)
    ]
    results: list[dict[str, Any]] = ray.get([task.remote(job) for job in jobs])
    bad = [r["error"] for r in results if r["error"] is not None]
    if bad:
        raise TrainError(f"{len(bad)} of {workers} tune workers failed on the cluster: {bad[0]}")
    return results


def _worker_task(job: dict[str, Any]) -> dict[str, Any]:
    """One tune worker on a cluster node: its node, its measured cost, and its error line (None when
    it met its budget)."""
    import ray

    from dcloop.config import Config
    from dcloop.meter import meter_for
    from dcloop.optimize._worker import run_worker
    from dcloop.workspace import open_workspace

    node = ray.get_runtime_context().get_node_id()
    workspace = open_workspace(Path(job["root"]), Config.model_validate(job["config"]))
    error = None
    with meter_for(workspace) as meter:
        try:
            # wait_for_running: a task run again after a node loss waits for that node's trial to go stale
            run_worker(
                workspace,
                workspace.config.tune,
                job["url"],
                job["index"],
                job["deadline"],
                wait_for_running=True,
                trial_attrs={NODE_ATTR: node},
            )
        except DcloopError as exc:
            error = f"worker {job['index']}: {exc}"
    return {"node": node, "error": error, "cost": meter.result().as_dict()}


def _record_cost(name: str, url: str, heartbeat_s: int, cost: dict[str, Any]) -> None:
    """Add this launch's summed cost to the study's (a resumed study keeps the earlier launches')."""
    import optuna

    from dcloop.optimize._study import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_s))
    before = study.user_attrs.get(COST_ATTR)
    total = {**cost, "launches": 1}
    if before:
        total |= {key: before[key] + cost[key] for key in (*SUMMED, "wall_s", "pieces_wall_s", "pieces")}
        total |= {
            "launches": before["launches"] + 1,
            "peak_rss_mb": max(before["peak_rss_mb"], cost["peak_rss_mb"]),
            "nodes": sorted({*before["nodes"], *cost["nodes"]}),
        }
        if "estimated" in before["energy_source"]:
            total["energy_source"] = "estimated"
    study.set_user_attr(COST_ATTR, total)
    log.info(
        "study %s: %.1f CPU s, %.1f J (%s)", name, total["cpu_s"], total["energy_j"], total["energy_source"]
    )
