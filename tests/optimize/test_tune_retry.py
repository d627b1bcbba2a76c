"""A trial whose worker died is asked again with its parameters, once: two workers failing the same
stale trial at once each ask a retry, and the later one is set aside as surplus, never counted."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_lost_trial_is_retried_with_its_params_and_a_second_retry_is_surplus(tmp_path: Path) -> None:
    import optuna
    import sqlalchemy
    from optuna.trial import TrialState

    from dcloop.optimize._study import open_storage
    from dcloop.optimize._worker import _retried_already

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, heartbeat_s=1)
    study = optuna.create_study(study_name="s", storage=storage)
    lost = study.ask()
    lr = lost.suggest_float("lr", 1e-4, 1e-1, log=True)
    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=60)  # optuna stores naive UTC
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # its worker died long ago, before its first heartbeat
        conn.execute(sqlalchemy.text("UPDATE trials SET datetime_start = :t"), {"t": long_ago})
    engine.dispose()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        retry = storage.get_heartbeat_stale_trial_callback()
        assert retry is not None
        retry(study, study.get_trials()[lost.number])  # a second worker failing it at once retries it too
    first, second = study.ask(), study.ask()  # each pops one retry, as two workers would
    trials = study.get_trials()
    assert trials[lost.number].state == TrialState.FAIL
    assert [t.system_attrs["failed_trial"] for t in trials[1:]] == [lost.number, lost.number]
    assert first.suggest_float("lr", 1e-4, 1e-1, log=True) == lr  # the same parameters again
    assert (_retried_already(first), _retried_already(second)) == (False, True)
