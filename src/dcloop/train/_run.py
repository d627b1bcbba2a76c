"""`train`: one recorded training run, from recipe and data set version to tested model and report.

Read top to bottom: validate, open (or reopen, for --resume) the run record, train in this process or
through torchrun on ``nproc`` workers, then test the chosen weights on the held-out split, write the
run folder (model, config, metrics, report). With tracking on, the run is mirrored to MLflow
as it trains: opened at the start, one step per epoch, closed with the run's outcome.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcloop import config as config_module
from dcloop.atomic import replacing, write_text
from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.errors import ConfigError, TrainError
from dcloop.meter import meter_for
from dcloop.store import RunRecord
from dcloop.store import runs as store_runs
from dcloop.train import _lineage as lineage
from dcloop.train._liveness import OWNER, crash_log, current_owner, fail_dead_runs
from dcloop.train._trained import (
    SPEC,
    WEIGHTS,
    build_model,
    holdout_metrics,
    load_model,
    load_tokenizer,
    prepare_model,
    run_tokenizer,
    save_trained,
    write_json,
)
from dcloop.workspace import Workspace

if TYPE_CHECKING:
    from dcloop.train._loop import EpochHook
    from dcloop.train._tracking import LiveRun

    Launcher = Callable[[Path, str, bool], None]

log = logging.getLogger(__name__)
TRAIN_INDEX = "train_index.npy"  # in a run folder: the train split its caller chose


def train(
    workspace: Workspace,
    recipe: TrainConfig,
    dataset: str | None = None,
    *,
    kind: str = "train",
    name: str | None = None,
    resume: str | None = None,
    nproc: int = 1,
    on_epoch: EpochHook | None = None,
    init_from: str | None = None,
    launch_args: Sequence[str] = (),
    launcher: Launcher | None = None,
    train_index: np.ndarray | None = None,
) -> RunRecord:
    """Train ``recipe`` on a data set version (default: the newest) and record the run.

    ``resume`` ("latest" or a run id) continues an unfinished run from its last checkpoint with its
    own recipe. ``nproc`` > 1 (or torchrun ``launch_args`` such as --nnodes) trains data-parallel.
    ``on_epoch(epoch, metrics)`` runs after each epoch; if it raises, the run is marked stopped and
    the exception propagates. ``init_from`` is a run whose weights warm-start the model.
    ``launcher(root, run_id, resume)``, when given, runs the workers instead of torchrun (dcloop.cluster
    submits them to Ray Train); they call ``run_training`` like torchrun's workers do.
    ``train_index`` replaces the data set's train split for this run (repeats are drawn that many times
    per epoch); it is kept in the run folder, so a resumed run and every worker train on the same.
    """
    from dcloop.data import load_dataset

    distributed = nproc > 1 or bool(launch_args) or launcher is not None
    if distributed and on_epoch is not None:
        raise TrainError("An on_epoch callback needs nproc=1: workers run in other processes.")
    if distributed and launcher is None:
        from dcloop.train._distributed import check_launch

        check_launch(nproc, launch_args)
    if resume is not None:
        run = _resumable(workspace, resume)
        recipe = TrainConfig.model_validate(run.config)
        data = load_dataset(workspace, run.dataset_id)
        lineage = {**run.lineage, OWNER: current_owner()}
        run = store_runs.update_run(
            workspace.store, run.id, status="running", finished_at=None, lineage=lineage
        )
    else:
        from dcloop.train._text_recipe import resolve_recipe

        data = load_dataset(workspace, dataset)
        recipe = resolve_recipe(recipe, data.modality)
        _check_recipe(recipe)
        _check_fit(recipe, data, distributed)
        parent = store_runs.get_run(workspace.store, init_from).id if init_from else None
        run = _open_run(workspace, recipe, data, kind, name, parent, nproc)
        if train_index is not None:
            with replacing(Path(run.path) / TRAIN_INDEX) as tmp:
                np.save(tmp, np.asarray(train_index, dtype=np.int64))

    live = _start_tracking(workspace, run)
    stopped = _HookGuard(on_epoch, live)
    with meter_for(workspace) as meter:
        try:
            if launcher is not None:
                launcher(workspace.root, run.id, resume is not None)
            elif distributed:
                from dcloop.train._distributed import launch

                launch(workspace.root, run.id, resume is not None, nproc, launch_args)
            else:
                with crash_log(Path(run.path)):
                    run_training(workspace, run, data, recipe, resume=resume is not None, on_epoch=stopped)
        except BaseException as exc:
            status = "stopped" if stopped.raised or isinstance(exc, KeyboardInterrupt) else "failed"
            store_runs.update_run(
                workspace.store, run.id, status=status, metrics={"error": f"{type(exc).__name__}: {exc}"}
            )
            if live is not None:
                live.end(status)
            raise
    try:
        return _finish(workspace, run, data, meter.result().as_dict(), live, distributed)
    except BaseException as exc:
        store_runs.update_run(
            workspace.store, run.id, status="failed", metrics={"error": f"{type(exc).__name__}: {exc}"}
        )
        if live is not None:
            live.end("failed")
        raise


def _start_tracking(workspace: Workspace, run: RunRecord) -> LiveRun | None:
    """Open the run's MLflow mirror now, so its start time, per-epoch curves and duration are real."""
    from dcloop.train._tracking import LiveRun, tracker_for

    tracker = tracker_for(workspace)
    return LiveRun(tracker, run).start() if tracker is not None else None


class _HookGuard:
    """Logs each epoch to MLflow as it ends, then calls the user's on_epoch and remembers whether it
    raised (a stop, not a failure)."""

    def __init__(self, hook: EpochHook | None, live: LiveRun | None = None) -> None:
        self.hook, self.live, self.raised = hook, live, False

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.live is not None:
            self.live.log_epoch(epoch, metrics)
        if self.hook is None:
            return
        try:
            self.hook(epoch, metrics)
        except BaseException:
            self.raised = True
            raise


def _check_recipe(recipe: TrainConfig) -> None:
    from dcloop.train._models import list_models
    from dcloop.train._recipe import check_names

    check_names(recipe.model, recipe.optimizer, recipe.schedule, recipe.loss, list_models())
    if recipe.device not in ("auto", "cpu"):
        import torch

        if not recipe.device.startswith("cuda") or not torch.cuda.is_available():
            raise ConfigError(
                f"`train.device` must be auto, cpu or an available cuda device. Got {recipe.device!r}."
            )


def _check_fit(recipe: TrainConfig, data: PreparedDataset, distributed: bool = False) -> None:
    if recipe.loss == "bce" and data.num_classes != 2:
        raise ConfigError(
            f"`train.loss` bce needs a binary data set; version {data.id[:12]} has {data.num_classes} classes. "
            "Use cross_entropy."
        )
    if len(data.splits["train"]) == 0:
        raise ConfigError(f"Data set version {data.id[:12]} has an empty train split.")
    if len(data.splits["val"]) == 0:
        needs = {
            "`train.target_accuracy`": recipe.target_accuracy is not None,
            "`train.early_stopping_patience`": recipe.early_stopping_patience > 0,
            "`train.val_every_steps`": recipe.val_every_steps > 0,
            "`train.schedule` plateau": recipe.schedule == "plateau",
        }
        for field, used in needs.items():
            if used:
                raise ConfigError(
                    f"{field} follows validation, but data set version {data.id[:12]} has no validation "
                    "split (data.val_fraction 0): leave it out, or import with data.val_fraction > 0."
                )
    if recipe.freeze_epochs and distributed:
        # DDP fixes the set of parameters it synchronizes when it wraps the model
        raise ConfigError(
            "`train.freeze_epochs` needs one process (--nproc 1); set it to 0 to train data-parallel."
        )


def _resumable(workspace: Workspace, ref: str) -> RunRecord:
    from dcloop.store.runs import unfinished_runs
    from dcloop.train._checkpoint import latest_checkpoint

    if ref == store_runs.LATEST:  # to resume: the newest run that can be resumed, not the newest run
        for run in fail_dead_runs(workspace.store, unfinished_runs(workspace.store)):
            if not _running_here(run) and latest_checkpoint(Path(run.path) / "checkpoint") is not None:
                return run
        raise TrainError(
            "No unfinished run with a checkpoint in this workspace; start one with `dcloop train`."
        )
    run = fail_dead_runs(workspace.store, [store_runs.get_run(workspace.store, ref)])[0]
    if run.status == "finished":
        raise TrainError(f"Run {run.id[:12]} already finished; nothing to resume.")
    if _running_here(run):
        owner = run.lineage[OWNER]
        raise TrainError(
            f"Run {run.id[:12]} is still running (pid {owner['pid']} on {owner['host']}); "
            "stop that process before resuming it."
        )
    if latest_checkpoint(Path(run.path) / "checkpoint") is None:
        raise TrainError(f"Run {run.id[:12]} has no checkpoint to resume from; start a new run instead.")
    return run


def _running_here(run: RunRecord) -> bool:
    """A ``running`` run whose owner is alive on this host (``fail_dead_runs`` already ran on it)."""
    owner = run.lineage.get(OWNER) or {}
    return run.status == "running" and owner.get("host") == socket.gethostname()


def _open_run(
    workspace: Workspace,
    recipe: TrainConfig,
    data: PreparedDataset,
    kind: str,
    name: str | None,
    parent: str | None,
    nproc: int,
) -> RunRecord:
    run_id = uuid.uuid4().hex
    folder = workspace.runs_dir / run_id
    folder.mkdir(parents=True)
    resolved = workspace.config.model_copy(update={"train": recipe})
    write_text(folder / "config.yaml", config_module.dump(resolved))
    info: dict[str, Any] = {
        "dataset_id": data.id,
        "seed": recipe.seed,
        "code": lineage.code_version(Path.cwd()),
        "nproc": nproc,
        "init_from": parent,
        OWNER: current_owner(),
        **lineage.environment(),
    }
    record = RunRecord(
        id=run_id,
        kind=kind,
        name=name or f"{recipe.model}-{run_id[:8]}",
        dataset_id=data.id,
        model=recipe.model,
        status="running",
        created_at=datetime.now(UTC),
        config=recipe.model_dump(mode="json"),
        lineage=info,
        metrics={},
        path=str(folder),
        parent_run_id=parent,
    )
    return store_runs.add_run(workspace.store, record)


def run_training(
    workspace: Workspace,
    run: RunRecord,
    data: PreparedDataset,
    recipe: TrainConfig,
    *,
    resume: bool,
    on_epoch: EpochHook | None = None,
    comm_hook: Callable[..., Any] | None = None,
) -> None:
    """Build (or warm-start) the model and fit it, checkpointing into the run folder; rank 0 writes
    the epochs to the store and the chosen weights to ``model.safetensors``. Workers call this too
    (``comm_hook``: a DDP communication hook, see ``fit_model``)."""
    from dcloop.train._checkpoint import load_weights
    from dcloop.train._distributed import rank_world
    from dcloop.train._loop import fit_model, seed_everything

    folder = Path(run.path)
    data = _chosen_train_split(folder, data)
    rank = rank_world()[0]
    seed_everything(recipe.seed)  # initial weights depend on the seed only
    tokenizer = run_tokenizer(folder, recipe, data, write=rank == 0)
    model = build_model(recipe, data, tokenizer)
    if run.parent_run_id is not None and not resume:
        parent = store_runs.get_run(workspace.store, run.parent_run_id)
        try:
            model.load_state_dict(load_weights(Path(parent.path) / WEIGHTS))
        except (OSError, RuntimeError) as exc:
            raise TrainError(
                f"Weights of run {parent.id[:12]} do not fit model {recipe.model!r}: {exc}."
            ) from None
    prepare_model(model, recipe)
    store = workspace.store

    def record_epoch(epoch: int, metrics: dict[str, float]) -> None:
        store_runs.log_epoch(store, run.id, epoch, _finite(metrics), metrics["epoch_s"])
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    result = fit_model(
        model,
        data,
        recipe,
        on_epoch=record_epoch,
        progress_label=f"train {run.name}",
        checkpoint_dir=folder / "checkpoint",
        resume=resume,
        tokenizer=tokenizer,
        comm_hook=comm_hook,
    )
    if rank == 0:
        figures = _text_figures(result, data, recipe, tokenizer) if tokenizer is not None else {}
        save_trained(folder, result.model, recipe, data, run.id, tokenizer)
        fit = {
            "best_epoch": result.best_epoch,
            "best_val": result.best_metric if math.isfinite(result.best_metric) else None,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "images_per_s": result.images_per_s,
            "train_s": result.train_s,
            "precision": result.precision,
            "spent": result.spent,
            **figures,
        }
        write_json(folder / "fit.json", fit)


def _chosen_train_split(folder: Path, data: PreparedDataset) -> PreparedDataset:
    """``data`` with the train split the run was started with (``train(train_index=...)``), if any."""
    path = folder / TRAIN_INDEX
    if not path.is_file():
        return data
    return dataclasses.replace(data, splits={**data.splits, "train": np.load(path)})


def _text_figures(result: Any, data: PreparedDataset, recipe: TrainConfig, tokenizer: Any) -> dict[str, Any]:
    import torch

    from dcloop.train._batches import token_arrays
    from dcloop.train._throughput import text_fit_figures

    _, lengths = token_arrays(data, tokenizer, recipe.max_length)
    train = data.splits["train"]
    epoch_tokens = int(lengths[train].sum())
    return text_fit_figures(
        result.model,
        epoch_tokens,
        len(train),
        result.images_per_s,
        len(result.history),
        recipe.threads or torch.get_num_threads(),
        recipe.finetune == "lora",
    )


def _finite(metrics: dict[str, float]) -> dict[str, Any]:
    """NaN/inf become None: JSON columns (PostgreSQL) refuse them."""
    return {k: v if math.isfinite(v) else None for k, v in metrics.items()}


def _finish(
    workspace: Workspace,
    run: RunRecord,
    data: PreparedDataset,
    cost: dict[str, Any],
    live: LiveRun | None,
    distributed: bool,
) -> RunRecord:
    """Test the chosen weights, write metrics.json and report.html, close the record and its MLflow run."""
    import json

    from dcloop.train._report import write_run_report

    folder = Path(run.path)
    model, spec = load_model(folder)
    tokenizer = load_tokenizer(folder, spec)
    fit = json.loads((folder / "fit.json").read_text(encoding="utf-8"))
    epochs = store_runs.list_epochs(workspace.store, run.id)
    test = holdout_metrics(model, data, tokenizer, spec["input"].get("max_length", 0))
    metrics = {**test, **fit, "epochs_run": len(epochs), "cost": cost}
    write_json(folder / "metrics.json", metrics)
    history = [e.metrics for e in epochs]
    finished = store_runs.update_run(workspace.store, run.id, status="finished", metrics=metrics)
    report = write_run_report(folder / "report.html", finished, history, metrics)
    if live is not None:
        if distributed:  # torchrun workers wrote the epochs to the store, not to this process
            live.log_epochs((e.epoch, e.metrics) for e in epochs)
        files = [folder / n for n in ("config.yaml", "metrics.json", WEIGHTS, SPEC)] + [report]
        files += [folder / n for n in (spec.get("tokenizer"), spec.get("adapter")) if n]
        mlflow_id = live.finish(finished, files)
        if mlflow_id is not None:
            finished = store_runs.update_run(
                workspace.store, run.id, metrics={**metrics, "mlflow_run_id": mlflow_id}
            )
    return finished
