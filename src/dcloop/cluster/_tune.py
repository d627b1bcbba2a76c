"""`dcloop tune --cluster`: the study's workers as Ray tasks, Optuna still the search and its RDB the record.

Each task runs ``run_worker``, the function a local tune worker process runs: it asks the study (in
the storage every node reaches: the workspace's SQLite file on a shared folder, or PostgreSQL) for
trials until the budget is met. A task lost with its node is run again by Ray; the trial it was
running stops sending heartbeats, is failed by Optuna and asked again, so no trial is lost or
counted twice (the budget counts finished trials only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dcloop.cluster._connect import connected
from dcloop.cluster._status import check_fits
from dcloop.errors import DcloopError, TrainError
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
TASK_RETRIES = 3  # a task whose node is lost runs again this many times


def tune_on_cluster(workspace: Workspace, *, address: str | None = None, **options: Any) -> Any:
    """``dcloop.optimize.tune`` (same options) with each worker a Ray task on the cluster."""
    from dcloop.optimize import tune

    cpus = workspace.config.cluster.cpus_per_worker
    with connected(workspace, address):
        check_fits("a tune worker", "cluster.cpus_per_worker", cpus, workspace.config.cluster.gpus_per_worker)

        def spawn(
            ws: Workspace,
            config: dict[str, Any],
            url: str,
            workers: int,
            deadline: float | None,
            resume: bool,
        ) -> None:
            _run_tasks(ws, config, url, workers, deadline, cpus)

        return tune(workspace, spawn=spawn, **options)


def _run_tasks(
    ws: Workspace, config: dict[str, Any], url: str, workers: int, deadline: float | None, cpus: float
) -> None:
    import ray

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        raise TrainError(f"The study storage {url!r} must be an absolute path every node reaches.")
    task = ray.remote(num_cpus=cpus, max_retries=TASK_RETRIES, retry_exceptions=False)(_worker_task)
    jobs = [
        {"root": str(ws.root), "config": config, "url": url, "index": i, "deadline": deadline}
        for i in range(workers)
    ]
    results = ray.get([task.remote(job) for job in jobs])
    bad = [r for r in results if r is not None]
    if bad:
        raise TrainError(f"{len(bad)} of {workers} tune workers failed on the cluster: {bad[0]}")


def _worker_task(job: dict[str, Any]) -> str | None:
    """One tune worker on a cluster node; None when it met its budget, else its error line."""
    from dcloop.config import Config
    from dcloop.optimize._worker import run_worker
    from dcloop.workspace import open_workspace

    workspace = open_workspace(Path(job["root"]), Config.model_validate(job["config"]))
    try:
        # wait_for_running: a task run again after a node loss waits for that node's trial to go stale
        run_worker(
            workspace, workspace.config.tune, job["url"], job["index"], job["deadline"], wait_for_running=True
        )
    except DcloopError as exc:
        return f"worker {job['index']}: {exc}"
    return None
