"""A tune worker: runs trials of one study until its budget is met (in this process or a child).

The trial budget is exact under concurrency: a worker starts a trial only while the budget has free
slots, and a trial asked by a racing worker beyond it is recorded as surplus, never counted.
A worker started with ``wait_for_running`` (a resume) waits for running trials to finish or to be
failed by their stale heartbeat, so the trials of a killed worker are retried.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcloop.errors import DcloopError, TrainError
from dcloop.optimize import _study
from dcloop.store import runs as store_runs

if TYPE_CHECKING:
    import optuna

    from dcloop.config import TuneConfig
    from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
_MAX_CONSECUTIVE_FAILURES = 3


def _worker_main() -> None:
    """Entry of a worker process: the job arrives as JSON on stdin."""
    from dcloop.config import Config
    from dcloop.workspace import open_workspace

    job = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workspace = open_workspace(Path(job["root"]), Config.model_validate(job["config"]))
    try:
        run_worker(
            workspace,
            workspace.config.tune,
            job["url"],
            job["index"],
            job["deadline"],
            wait_for_running=job["resume"],
        )
    except DcloopError as exc:
        log.error("tune worker %d: %s", job["index"], exc)
        sys.exit(exc.exit_code)


def run_worker(
    workspace: Workspace,
    cfg: TuneConfig,
    url: str,
    index: int,
    deadline: float | None,
    *,
    wait_for_running: bool,
    trial_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Run trials of the study until its budget is met, the deadline passes or trials keep failing.

    With ``wait_for_running`` a worker whose budget is all taken by running trials waits for them to
    finish or to be failed by their stale heartbeat (so a resume retries a dead worker's trials).
    ``trial_attrs`` are written on each trial this worker starts (a cluster task names its node).
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=cfg.study,
        storage=_study.open_storage(url, cfg.heartbeat_s),
        sampler=_sampler(cfg, index),
        pruner=_pruner(cfg),
    )
    objective = _Objective(workspace, cfg, study.user_attrs[_study.DATASET_ATTR], index, trial_attrs or {})
    failures: list[bool] = []

    def record(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not trial.user_attrs.get(_study.SURPLUS_ATTR):
            failures.append(trial.state == TrialState.FAIL)

    while deadline is None or time.time() < deadline:
        counts = _study.counts(study)
        if counts.done >= cfg.trials:
            return
        if counts.occupied >= cfg.trials and not counts.waiting:  # a waiting (enqueued) trial is ours to run
            if not wait_for_running or counts.running == 0:
                return
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            time.sleep(cfg.heartbeat_s)  # let the running trials finish or go stale
            continue
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[record], gc_after_trial=True)
        recent = failures[-_MAX_CONSECUTIVE_FAILURES:]
        if len(recent) == _MAX_CONSECUTIVE_FAILURES and all(recent):
            raise TrainError(
                f"{len(recent)} trials in a row failed; the last: {objective.last_error or 'see the log'}"
            )


class _Objective:
    """Trains one trial as a tracked run (kind "trial"); keeps the last error for the worker loop."""

    def __init__(
        self, workspace: Workspace, cfg: TuneConfig, dataset_id: str, index: int, attrs: Mapping[str, Any]
    ) -> None:
        self.workspace, self.cfg, self.dataset_id, self.attrs = workspace, cfg, dataset_id, attrs
        self.threads = workspace.config.train.threads or max(1, (os.cpu_count() or 1) // cfg.workers)
        self.last_error: str | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from dcloop.optimize._space import apply_params, suggest
        from dcloop.train import train

        self.last_error = None
        if _study.is_surplus(trial.study, trial.number, self.cfg.trials):
            trial.set_user_attr(_study.SURPLUS_ATTR, True)
            raise _Surplus(f"trial {trial.number} is beyond the budget of {self.cfg.trials}")
        for key, value in self.attrs.items():
            trial.set_user_attr(key, value)
        params = suggest(trial, self.cfg.space)
        recipe = apply_params(self.workspace.config.train, params).model_copy(
            update={
                "epochs": self.cfg.epochs,
                "monitor": self.cfg.metric,
                "threads": self.threads,
                "early_stopping_patience": 0,
            }
        )
        name = f"{self.cfg.study}#{trial.number}"
        minimize = self.cfg.metric == "val_loss"
        values: list[float] = []

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            values.append(float(metrics[self.cfg.metric]))
            trial.report(values[-1], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        try:
            run = train(self.workspace, recipe, self.dataset_id, kind="trial", name=name, on_epoch=on_epoch)
        except optuna.TrialPruned:
            trial.set_user_attr("run_id", self._run_id(name))
            raise
        except Exception as exc:
            self.last_error = str(exc) if isinstance(exc, DcloopError) else f"{type(exc).__name__}: {exc}"
            raise
        trial.set_user_attr("run_id", run.id)
        return min(values) if minimize else max(values)

    def _run_id(self, name: str) -> str | None:
        runs = [r for r in store_runs.list_runs(self.workspace.store, kind="trial") if r.name == name]
        return runs[-1].id if runs else None


class _Surplus(Exception):
    """A trial asked after the budget was already taken by other workers."""


def _sampler(cfg: TuneConfig, index: int) -> optuna.samplers.BaseSampler:
    import optuna

    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=cfg.seed + index)
    # constant_liar: running trials count as bad guesses, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=cfg.seed + index, n_startup_trials=5, constant_liar=True)


def _pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    import optuna

    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if cfg.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


if __name__ == "__main__":
    _worker_main()
