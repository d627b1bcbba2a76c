"""`dcloop train --cluster`: the same training run, its workers placed by Ray Train.

``train_on_cluster`` calls dcloop's own ``train`` with a launcher that hands the workers to a Ray
Train ``TorchTrainer``. Ray Train starts the processes and their process group (gloo on CPUs, NCCL on
GPUs); each worker runs ``run_training``, the function torchrun's workers run, so rank and world size
come from torch.distributed as before. Rank 0 checkpoints every epoch into the run folder; when a
worker or its node is lost, Ray Train starts the group again (up to ``cluster.max_failures`` times,
on as few as ``cluster.min_workers``) and the new workers resume from the last complete checkpoint.

Each worker writes a small record (its node, then its measured cost) under the run folder's
``cluster/<launch>/``; the finished run's lineage gets the restarts and nodes, and its cost the
workers' CPU time, energy and money summed with the driver's.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dcloop.atomic import write_text
from dcloop.cluster._connect import connected
from dcloop.cluster._cost import sum_costs
from dcloop.cluster._reach import check_reachable
from dcloop.cluster._status import check_fits
from dcloop.cluster._usage import open_shared_workspace, this_node
from dcloop.config import ClusterConfig, TrainConfig
from dcloop.errors import TrainError
from dcloop.store import RunRecord
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


def train_on_cluster(
    workspace: Workspace,
    recipe: TrainConfig,
    dataset: str | None = None,
    *,
    name: str | None = None,
    resume: str | None = None,
    address: str | None = None,
    settings: ClusterConfig | None = None,
) -> RunRecord:
    """Train ``recipe`` with Ray Train on the cluster and record the run as a local run is recorded."""
    from dcloop.store import runs as store_runs
    from dcloop.train import train

    settings = settings or workspace.config.cluster
    launch_id = uuid.uuid4().hex[:12]
    marks = {"called": time.time()}  # the driver's side of the run's timeline (lineage.cluster.marks)
    with connected(workspace, address) as target:
        marks["connected"] = time.time()
        low = settings.min_workers or settings.num_workers
        check_fits(
            f"{low} training workers",
            "cluster.num_workers/min_workers, cpus_per_worker, gpus_per_worker",
            settings.cpus_per_worker,
            settings.gpus_per_worker,
            low,
        )
        check_reachable(workspace, {"`cluster.storage_path`": settings.storage_path})

        def launcher(root: Path, run_id: str, resumed: bool) -> None:
            run = store_runs.get_run(workspace.store, run_id)  # status lists it as running on the cluster
            info = {"address": target.address, "launch": launch_id, "nodes": None}
            store_runs.update_run(workspace.store, run_id, lineage={**run.lineage, "cluster": info})
            marks["submitted"] = time.time()
            _fit(root, run_id, launch_id, settings, _storage(workspace, settings))
            marks["returned"] = time.time()

        run = train(workspace, recipe, dataset, name=name, resume=resume, launcher=launcher)
        return _record(workspace, run, launch_id, target.address, settings, marks)


def _storage(workspace: Workspace, settings: ClusterConfig) -> str:
    if settings.storage_path:
        return settings.storage_path
    folder = workspace.state / "cluster" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _fit(root: Path, run_id: str, launch_id: str, settings: ClusterConfig, storage: str) -> None:
    """Run the worker group under Ray Train and wait; a failure beyond max_failures is one TrainError.

    One worker needs no torch process group, so it runs under Ray Train's plain data-parallel trainer,
    which skips the process group's setup and teardown (the same training: one rank uses no DDP)."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    workers: int | tuple[int, int] = settings.num_workers
    if settings.min_workers is not None and settings.min_workers < settings.num_workers:
        workers = (settings.min_workers, settings.num_workers)
    resources = {"CPU": settings.cpus_per_worker} | (
        {"GPU": settings.gpus_per_worker} if settings.gpus_per_worker else {}
    )
    trainer_cls = TorchTrainer if settings.num_workers > 1 else DataParallelTrainer
    trainer = trainer_cls(
        _worker,
        train_loop_config={"root": str(root), "run_id": run_id, "launch": launch_id},
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers,  # type: ignore[arg-type]  # V2 ScalingConfig takes (min, max)
            use_gpu=settings.gpus_per_worker > 0,
            resources_per_worker=resources,
        ),
        run_config=ray.train.RunConfig(
            name=f"dcloop-{run_id[:12]}-{launch_id}",
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=settings.max_failures),
        ),
    )
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainError(
            f"Training run {run_id[:12]} failed on the cluster: {detail}".rstrip(".") + "."
        ) from None


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the body of ``python -m dcloop.train._worker`` minus the process group setup.

    Its record gets the moments it reached (``marks``: entered, imported, fit_start, first_step,
    fit_end) and, with several workers, the seconds spent in the gradient allreduce (``comm_s``)."""
    entered = time.time()
    import ray
    import ray.train
    import torch

    from dcloop.config import TrainConfig
    from dcloop.data import load_dataset
    from dcloop.meter import meter_for
    from dcloop.store import runs as store_runs
    from dcloop.train._checkpoint import latest_checkpoint
    from dcloop.train._run import run_training

    marks = {"entered": entered, "imported": time.time()}
    workspace = open_shared_workspace(Path(config["root"]))
    run = store_runs.get_run(workspace.store, config["run_id"])
    recipe = TrainConfig.model_validate(run.config)
    if torch.cuda.is_available() and recipe.device in ("auto", "cuda"):
        recipe = recipe.model_copy(update={"device": str(ray.train.torch.get_device())})
    context = ray.train.get_context()
    record = _worker_record(
        Path(run.path), config["launch"], context.get_world_rank(), context.get_world_size()
    )
    resume = latest_checkpoint(Path(run.path) / "checkpoint") is not None
    comm = _CommTimer() if context.get_world_size() > 1 else None
    with meter_for(workspace) as meter, _first_step(marks):
        marks["fit_start"] = time.time()
        data = load_dataset(workspace, run.dataset_id)
        run_training(workspace, run, data, recipe, resume=resume, comm_hook=comm.hook() if comm else None)
    marks["fit_end"] = time.time()
    timing = {"marks": marks} | ({"comm_s": comm.seconds, "comm_calls": comm.calls} if comm else {})
    cost = {"cost": meter.result().as_dict()}
    _write(record, {**json.loads(record.read_text(encoding="utf-8")), **cost, **timing})


@contextmanager
def _first_step(marks: dict[str, float]) -> Iterator[None]:
    """Stamp ``marks["first_step"]`` at this process's first optimizer step: where scheduling ends
    (a global step hook sees the optimizer fit_model builds)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    def stamp(*_: Any) -> None:
        marks.setdefault("first_step", time.time())

    handle = register_optimizer_step_post_hook(stamp)
    try:
        yield
    finally:
        handle.remove()


class _CommTimer:
    """DDP's gradient allreduce (torch's own default hook), timed in this worker from its start to
    the averaged gradients' arrival: the time on the wire plus any wait for a slower rank."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, state: Any, bucket: Any) -> Any:
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        start = time.perf_counter()

        def done(future: Any) -> Any:
            self.seconds += time.perf_counter() - start
            self.calls += 1
            return future.value()

        return allreduce_hook(state, bucket).then(done)

    def hook(self) -> Callable[[Any, Any], Any]:
        """This timer as DDP's ``register_comm_hook`` takes it: DDP checks the hook's annotations
        against torch's classes, and this module's are strings, so it gets a bare lambda."""
        return lambda state, bucket: self(state, bucket)


def _worker_record(folder: Path, launch_id: str, rank: int, world: int) -> Path:
    """Write this worker's node and start; return the record's path (its cost is added at the end)."""
    path = folder / "cluster" / launch_id / f"{time.time_ns()}-rank{rank}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"rank": rank, "world": world, **this_node(), "pid": os.getpid(), "started": time.time()}
    _write(path, info)
    return path


def _write(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=2))


def attempts(folder: Path, launch_id: str) -> list[list[dict[str, Any]]]:
    """Worker records of one launch grouped into attempts: a rank seen again, or a new world size,
    starts the next attempt (an attempt's workers all start before the group is started again)."""
    found = sorted((folder / "cluster" / launch_id).glob("*.json"))
    records = sorted((json.loads(p.read_text(encoding="utf-8")) for p in found), key=lambda r: r["started"])
    groups: list[list[dict[str, Any]]] = []
    for rec in records:
        if (
            not groups
            or rec["world"] != groups[-1][0]["world"]
            or rec["rank"] in {r["rank"] for r in groups[-1]}
        ):
            groups.append([])
        groups[-1].append(rec)
    return groups


def _record(
    workspace: Workspace,
    run: RunRecord,
    launch_id: str,
    address: str,
    settings: ClusterConfig,
    marks: dict[str, float] | None = None,
) -> RunRecord:
    """Add restarts, nodes and the workers' summed cost to the finished run (store and metrics.json)."""
    from dcloop.store import runs as store_runs
    from dcloop.train._trained import write_json

    folder = Path(run.path)
    groups = attempts(folder, launch_id)
    workers = [r for g in groups for r in g]
    finished = [r["cost"] for r in workers if "cost" in r]
    cost = sum_costs(run.metrics["cost"], finished) | {
        "workers": len(workers),
        "workers_measured": len(finished),
    }
    nodes = sorted({r["node_id"] for r in workers})
    info = {
        "address": address,
        "launch": launch_id,
        "num_workers": settings.num_workers,
        "min_workers": settings.min_workers,
        "cpus_per_worker": settings.cpus_per_worker,
        "gpus_per_worker": settings.gpus_per_worker,
        "restarts": max(len(groups) - 1, 0),
        "world_sizes": [len(g) for g in groups],
        "nodes": nodes,
        "node_labels": {r["node_id"]: r["labels"] for r in workers},
        "marks": marks or {},
    }
    metrics = {**run.metrics, "cost": cost, "restarts": info["restarts"]}
    write_json(folder / "metrics.json", metrics)
    lineage = {**run.lineage, "cluster": info}
    return store_runs.update_run(workspace.store, run.id, metrics=metrics, lineage=lineage)
