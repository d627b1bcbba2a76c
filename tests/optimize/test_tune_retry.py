"""A trial whose worker died is asked again with its parameters, once; and a waiting or stale trial
is taken by exactly one of several workers racing for it (SQLite ignores Optuna's row lock)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
WORKERS, TRIALS = 4, 20


def _age_running_trials(url: str) -> None:
    """Their workers died long ago, before a first heartbeat (optuna stores naive UTC)."""
    import sqlalchemy

    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=60)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE trials SET datetime_start = :t WHERE state = 'RUNNING'"), {"t": long_ago}
        )
    engine.dispose()


def _fail_stale(study: Any) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _race(url: str, work: Callable[[Any], list[int]]) -> list[int]:
    """Run ``work`` in WORKERS threads at once, each on its own storage (as separate workers are)."""
    import optuna

    from dcloop.optimize._study import open_storage

    done: list[int] = []
    start = threading.Barrier(WORKERS)

    def worker() -> None:
        study = optuna.load_study(study_name="s", storage=open_storage(url, 1))
        start.wait()
        done.extend(work(study))

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done


def test_a_lost_trial_is_asked_again_with_its_params(tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    from dcloop.optimize._study import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url, 1))
    lost = study.ask()
    lr = lost.suggest_float("lr", 1e-4, 1e-1, log=True)
    _age_running_trials(url)
    _fail_stale(study)
    retry = study.ask()
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING]
    assert trials[1].system_attrs["failed_trial"] == lost.number
    assert retry.suggest_float("lr", 1e-4, 1e-1, log=True) == lr


def test_racing_workers_take_each_waiting_trial_once_and_retry_each_stale_trial_once(tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    from dcloop.optimize._study import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url, 1))
    for x in range(TRIALS):
        study.enqueue_trial({"x": x}, skip_if_exists=False)

    def take_all(s: Any) -> list[int]:
        taken = []
        while (trial_id := s._pop_waiting_trial_id()) is not None:  # what ask() does first
            taken.append(trial_id)
        return taken

    def fail_all(s: Any) -> list[int]:
        _fail_stale(s)  # what every worker does before it asks
        return []

    taken = _race(url, take_all)
    assert sorted(taken) == sorted(t._trial_id for t in study.get_trials())  # each once, none twice
    _age_running_trials(url)  # all now look like trials of dead workers
    _race(url, fail_all)
    trials = study.get_trials()
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    assert sum(t.state == TrialState.FAIL for t in trials) == TRIALS
    assert sorted(t.system_attrs["failed_trial"] for t in retries) == list(range(TRIALS))  # one retry each
