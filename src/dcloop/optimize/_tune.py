"""`tune`: hyperparameter search as an Optuna study whose trials are tracked training runs.

Read top to bottom: resolve settings, open (create, join or resume) the study in its storage, run
the trials in this process or in ``workers`` processes (more machines join by running the same
command against one PostgreSQL URL), then write the best config as a dcloop.yaml fragment and the
HTML report. Each trial trains ``tune.epochs`` epochs, reports its validation metric every epoch
and is pruned when the pruner judges it hopeless. With ``resume`` a killed study continues: trials
of dead workers are failed once their heartbeat is stale, and only the missing trials run.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from dcloop.errors import TrainError
from dcloop.optimize import _study
from dcloop.optimize._tune_report import TuneResult, summarize

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

    from dcloop.config import TuneConfig
    from dcloop.workspace import Workspace

    # (workspace, resolved config as JSON, storage URL, workers, deadline, resume)
    Spawner = Callable[[Workspace, dict[str, Any], str, int, float | None, bool], None]

log = logging.getLogger(__name__)


def tune(
    workspace: Workspace,
    *,
    trials: int | None = None,
    workers: int | None = None,
    storage: str | None = None,
    study: str | None = None,
    resume: bool = False,
    timeout_s: float | None = None,
    spawn: Spawner | None = None,
) -> TuneResult:
    """Run (or continue) the study until it holds ``trials`` finished trials; flags override ``tune.*``.

    ``spawn``, when given, runs the ``workers`` instead of local processes, with ``_spawn_workers``'s
    arguments (dcloop.cluster submits each as a Ray task that runs ``run_worker``).
    """
    from dcloop.config import with_overrides

    overrides = {
        "trials": trials,
        "workers": workers,
        "storage": storage,
        "study": study,
        "timeout_s": timeout_s,
    }
    config = with_overrides(workspace.config, "tune", overrides)
    cfg = config.tune
    url = cfg.storage or f"sqlite:///{workspace.state / 'optuna.db'}"
    opened = _open_study(workspace, cfg, url, resume)
    deadline = time.time() + cfg.timeout_s if cfg.timeout_s else None
    if spawn is not None:
        spawn(workspace, config.model_dump(mode="json"), url, cfg.workers, deadline, resume)
    elif cfg.workers == 1:
        from dcloop.optimize._worker import run_worker

        run_worker(workspace, cfg, url, 0, deadline, wait_for_running=resume)
    else:
        _spawn_workers(workspace, config.model_dump(mode="json"), url, cfg.workers, deadline, resume)
    return summarize(workspace, opened.study_name, url, cfg)


def _open_study(workspace: Workspace, cfg: TuneConfig, url: str, resume: bool) -> optuna.Study:
    from dcloop.data import get_dataset
    from dcloop.optimize._space import current_values

    storage = _study.open_storage(url, cfg.heartbeat_s)
    found = _study.load_existing(storage, cfg.study, url)
    if found is None and resume:
        raise _study.missing(cfg.study, url)
    if found is None:
        created = _study.create(storage, cfg.study, cfg.metric, get_dataset(workspace).id)
        if created is not None and cfg.enqueue_defaults:
            created.enqueue_trial(
                current_values(workspace.config.train, cfg.space), user_attrs={"defaults": True}
            )
        found = created or _study.load_existing(storage, cfg.study, url)
        assert found is not None  # it exists: we or another worker just created it
    _study.check_format(found, url, cfg.metric)
    done = _study.counts(found).done
    if done >= cfg.trials:
        raise _study.finished(cfg.study, done, cfg.trials)
    return found


def _spawn_workers(
    workspace: Workspace, config: dict[str, Any], url: str, workers: int, deadline: float | None, resume: bool
) -> None:
    """Run ``workers`` worker processes (``python -m dcloop.optimize._worker``) and wait for them all."""
    processes = []
    for index in range(workers):
        job = {"root": str(workspace.root), "config": config, "url": url, "index": index}
        job.update(deadline=deadline, resume=resume)
        process = subprocess.Popen(
            [sys.executable, "-m", "dcloop.optimize._worker"], stdin=subprocess.PIPE, text=True
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(job))
        process.stdin.close()
        processes.append(process)
    try:
        codes = [process.wait() for process in processes]
    except BaseException:  # interrupted: stop the workers we started (their trials fail by heartbeat)
        for process in processes:
            process.terminate()
        raise
    bad = [code for code in codes if code != 0]
    if bad:
        raise TrainError(
            f"{len(bad)} of {workers} tune workers failed (exit codes {bad}); see their log output."
        )
