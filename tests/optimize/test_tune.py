"""`tune`: trials are tracked runs; the budget is exact under concurrent workers (SQLite and
PostgreSQL); a killed study resumes to the full count; bad resumes and foreign databases get
one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from dcloop import config
from dcloop.errors import DcloopError, NotFoundError, StoreError
from dcloop.optimize import tune
from dcloop.store import runs as store_runs


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _check_exact_budget(workspace, result, total: int) -> None:
    counted = [t for t in result.trials if t["state"] in {"complete", "pruned"}]
    assert result.complete + result.pruned == total == len(counted)
    assert len({t["trial"] for t in result.trials}) == len(result.trials)
    run_ids = [t["run"] for t in counted]
    assert all(run_ids) and len(set(run_ids)) == total
    trial_runs = {r.id[:12]: r for r in store_runs.list_runs(workspace.store, kind="trial")}
    assert all(trial_runs[r].name.startswith(result.study + "#") for r in run_ids)


def test_tune_runs_the_budget_and_writes_best_config_and_report(catdog_ws) -> None:
    result = tune(catdog_ws, trials=3, study=_name())
    _check_exact_budget(catdog_ws, result, 3)
    defaults = [t for t in result.trials if t["defaults"]]
    assert len(defaults) == 1 and defaults[0]["trial"] == 0  # the current config is trial 0
    assert defaults[0]["params"] == {"lr": 0.01, "batch_size": 64}
    assert result.default_value is not None and result.best_value >= result.default_value
    fragment = yaml.safe_load(result.best_config_path.read_text(encoding="utf-8"))
    assert set(fragment) == {"train"} and set(fragment["train"]) <= {"lr", "batch_size"}
    merged = config.with_overrides(catdog_ws.config, "train", fragment["train"])
    assert merged.train.lr == result.best_params["lr"]
    html = result.report_path.read_text(encoding="utf-8")
    assert html.count("<img") >= 1 and f"<td>{result.best_value:.4g}</td>" in html
    for trial in result.trials:
        assert trial["run"] in html


def test_resuming_a_finished_or_missing_study_is_refused(catdog_ws, monkeypatch) -> None:
    name = _name()
    tune(catdog_ws, trials=1, study=name)
    with pytest.raises(
        DcloopError, match=rf"^Study '{name}' is finished: 1 of 1 trials done. Raise --trials"
    ):
        tune(catdog_ws, trials=1, study=name, resume=True)
    with pytest.raises(NotFoundError, match=r"^No study 'never-ran' in sqlite:///.*optuna.db to resume"):
        tune(catdog_ws, trials=2, study="never-ran", resume=True)
    # a larger budget runs only the missing trial (through the CLI, as JSON)
    import json

    from typer.testing import CliRunner

    from dcloop.cli import app

    monkeypatch.chdir(catdog_ws.root)
    grown = CliRunner().invoke(
        app, ["tune", "--trials", "2", "--study", name, "--resume", "--format", "json"]
    )
    assert grown.exit_code == 0, grown.output
    data = json.loads(grown.stdout)
    assert data["complete"] + data["pruned"] == 2 and len(data["trials"]) == 2
    assert data["best_config_path"].endswith("tune-best.yaml")


def test_two_concurrent_workers_keep_the_budget_exact(catdog_ws) -> None:
    """Two workers racing in one process (threads): exactly the requested number of counted trials."""
    import threading

    from dcloop.config import with_overrides
    from dcloop.optimize._tune import _open_study
    from dcloop.optimize._tune_report import summarize
    from dcloop.optimize._worker import run_worker

    name = _name()
    cfg = with_overrides(catdog_ws.config, "tune", {"trials": 3, "study": name}).tune
    url = f"sqlite:///{catdog_ws.state / 'optuna.db'}"
    _open_study(catdog_ws, cfg, url, resume=False)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            run_worker(catdog_ws, cfg, url, index, None, wait_for_running=False)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    _check_exact_budget(catdog_ws, summarize(catdog_ws, name, url, cfg), 3)


@pytest.mark.slow  # two fresh worker processes (torch import each): ~20 s on a quiet 2-core machine
def test_two_worker_processes_share_one_sqlite_study(catdog_ws) -> None:
    result = tune(catdog_ws, trials=3, workers=2, study=_name())
    _check_exact_budget(catdog_ws, result, 3)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_worker_processes_share_one_postgresql_study(catdog_ws, pg_url: str) -> None:
    result = tune(catdog_ws, trials=3, workers=2, study=_name(), storage=pg_url)
    _check_exact_budget(catdog_ws, result, 3)
    assert "postgresql" in result.storage


def _running_trials(url: str, name: str) -> int:
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return 0
    return sum(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False))


def test_killed_study_resumes_to_the_full_count(catdog_ws) -> None:
    name = _name()
    url = f"sqlite:///{catdog_ws.state / 'optuna.db'}"
    env = {**os.environ, "DCLOOP_WORKSPACE": str(catdog_ws.root)}
    command = "from dcloop.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "-q", "tune", "--trials", "3", "--study", name],
        env=env,
        cwd=catdog_ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while _running_trials(url, name) == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the study finished before it could be killed"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert _running_trials(url, name) == 1  # the dead worker's trial is left RUNNING
    result = tune(catdog_ws, trials=3, study=name, resume=True)
    _check_exact_budget(catdog_ws, result, 3)
    assert result.failed >= 1  # the killed trial was failed (stale heartbeat) and retried


def test_a_study_database_from_another_version_is_refused(tmp_path: Path, catdog_ws) -> None:
    import optuna
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'old.db'}"
    optuna.create_study(study_name="plain", storage=url)
    with pytest.raises(
        StoreError, match=r"Study 'plain' in sqlite:///.*old.db was written by another version"
    ):
        tune(catdog_ws, trials=1, study="plain", storage=url)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = 'v0.9.0.a'"))
    engine.dispose()
    with pytest.raises(
        StoreError, match=r"^Study storage sqlite:///.*old.db was written by another version: "
    ) as info:
        tune(catdog_ws, trials=1, study="plain", storage=url)
    assert "\n" not in str(info.value)


def test_cli_errors_are_one_line_with_nonzero_exit(catdog_ws, monkeypatch) -> None:
    from typer.testing import CliRunner

    from dcloop.cli import app

    monkeypatch.chdir(catdog_ws.root)
    runner = CliRunner()
    missing = runner.invoke(app, ["tune", "--resume", "--study", "never-ran"])
    assert missing.exit_code != 0 and isinstance(missing.exception, NotFoundError)
    assert "\n" not in str(missing.exception) and "Start it without --resume" in str(missing.exception)
    unknown = runner.invoke(app, ["optimize", "nope"])
    assert unknown.exit_code != 0 and str(unknown.exception) == "No run 'nope'. See `dcloop runs list`."


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_killed_before_its_first_heartbeat_goes_stale(tmp_path: Path) -> None:
    """A worker killed between asking a trial and its first heartbeat leaves a RUNNING trial with no
    heartbeat row; it is failed once its grace period passes, so a resume never waits on it forever."""
    import warnings
    from datetime import UTC, datetime, timedelta

    import optuna
    import sqlalchemy
    from optuna.trial import TrialState

    from dcloop.optimize._study import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, heartbeat_s=1)
    study = optuna.create_study(study_name="s", storage=storage)
    dead, alive = study.ask(), study.ask()  # ask() writes no heartbeat: both look like the killed case
    long_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=60)  # optuna stores naive UTC
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE trials SET datetime_start = :t WHERE number = :n"),
            {"t": long_ago, "n": dead.number},
        )
    engine.dispose()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    retry = 2  # the failed trial is asked again (RetryHeartbeatStaleTrialCallback)
    assert states == {
        dead.number: TrialState.FAIL,
        alive.number: TrialState.RUNNING,
        retry: TrialState.WAITING,
    }
