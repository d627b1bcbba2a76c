"""Opening an Optuna study for dcloop: storage with heartbeats, version checks, trial accounting.

The trial budget is a total over the study's life: COMPLETE and PRUNED trials count toward it;
failed ones (a crash, a worker killed and failed by its stale heartbeat) do not and are retried.
A trial asked beyond the budget by a racing worker is recorded FAIL with ``dcloop_surplus`` and
never counted, so concurrent workers never run more than the requested number of counted trials.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dcloop.errors import DcloopError, NotFoundError, StoreError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
STUDY_FORMAT = 1
FORMAT_ATTR = "dcloop_study_format"
DATASET_ATTR = "dcloop_dataset_id"
DIRECTION_ATTR = "dcloop_metric"
SURPLUS_ATTR = "dcloop_surplus"
STALE_RETRIES = 2  # times a trial whose worker died is asked again with its params


def redact(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, creds = head.partition("//")
    return f"{scheme}//{creds.split(':', 1)[0]}:***@{tail}"


def open_storage(url: str, heartbeat_s: int) -> optuna.storages.RDBStorage:
    """An RDB storage with trial heartbeats; an incompatible schema is a one-line StoreError."""
    import optuna

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", optuna.exceptions.ExperimentalWarning
            )  # heartbeats: stable in use
            return _storage_class()(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_s,
                grace_period=3 * heartbeat_s,
                # a trial failed by its stale heartbeat (its worker or node died) runs again, same params
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    STALE_RETRIES
                ),
            )
    except RuntimeError as exc:  # optuna: schema written by another optuna version
        first = str(exc).strip().splitlines()[0]
        raise StoreError(f"Study storage {redact(url)} was written by another version: {first}") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlalchemy", "alembic")):
            raise StoreError(f"Cannot open study storage {redact(url)}: {str(exc).splitlines()[0]}") from None
        raise


def _storage_class() -> type[optuna.storages.RDBStorage]:
    """Optuna's RDB storage, where a running trial that never beat is stale too once its grace passes,
    and a trial is claimed by one worker only.

    Optuna fails only trials whose heartbeat went stale. A worker killed after asking a trial but before
    its heartbeat thread first wrote leaves a RUNNING trial with no heartbeat, which Optuna would never
    fail: a resume would wait for it forever. A live worker beats within milliseconds of asking.

    Optuna moves a trial from WAITING to RUNNING (a worker takes an enqueued or retried trial) and
    from RUNNING to FAIL (a worker fails a stale one, then asks its retry) by reading the row and then
    writing it; SQLite ignores the row lock of that read, so two workers could both take one waiting
    trial and run it twice, or both fail one stale trial and retry it twice. Here each move is one
    conditional UPDATE, which exactly one worker wins.
    """
    from datetime import UTC, datetime, timedelta

    import optuna
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    class _Storage(optuna.storages.RDBStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = super()._get_stale_trial_ids(study_id)
            started_before = datetime.now(UTC).replace(tzinfo=None) - timedelta(
                seconds=self.grace_period or 0
            )
            with _create_scoped_session(self.scoped_session) as session:
                never_beat = (
                    session.query(models.TrialModel.trial_id)
                    .filter(models.TrialModel.study_id == study_id)
                    .filter(models.TrialModel.state == TrialState.RUNNING)
                    .filter(models.TrialModel._datetime_start_utc < started_before)  # stored as naive UTC
                    .filter(~models.TrialModel.heartbeats.any())
                    .all()
                )
            return stale + [trial_id for (trial_id,) in never_beat if trial_id not in stale]

        def set_trial_state_values(
            self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
        ) -> bool:
            before = {TrialState.RUNNING: TrialState.WAITING, TrialState.FAIL: TrialState.RUNNING}.get(state)
            if values is None and before is not None and self._claim(trial_id, before, state):
                return True
            return super().set_trial_state_values(trial_id, state, values)  # lost the race: Optuna's answer

        def _claim(self, trial_id: int, before: TrialState, after: TrialState) -> bool:
            """Move the trial from ``before`` to ``after`` unless another worker moved it first."""
            started = after == TrialState.RUNNING
            stamp = (
                models.TrialModel._datetime_start_utc if started else models.TrialModel._datetime_complete_utc
            )
            with _create_scoped_session(self.scoped_session) as session:
                moved = (
                    session.query(models.TrialModel)
                    .filter(models.TrialModel.trial_id == trial_id, models.TrialModel.state == before)
                    .update(
                        {models.TrialModel.state: after, stamp: datetime.now(UTC).replace(tzinfo=None)},
                        synchronize_session=False,
                    )
                )
            return bool(moved == 1)

    return _Storage


@dataclass(frozen=True)
class Counts:
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int

    @property
    def done(self) -> int:
        return self.complete + self.pruned

    @property
    def occupied(self) -> int:
        """Slots of the budget taken: done, running, or enqueued and about to run."""
        return self.done + self.running + self.waiting


def counts(study: optuna.Study) -> Counts:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    by_state = {state: 0 for state in TrialState}
    for trial in trials:
        by_state[trial.state] += 1
    failed = sum(1 for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get(SURPLUS_ATTR))
    return Counts(
        by_state[TrialState.COMPLETE],
        by_state[TrialState.PRUNED],
        failed,
        by_state[TrialState.RUNNING],
        by_state[TrialState.WAITING],
    )


def is_surplus(study: optuna.Study, number: int, total: int) -> bool:
    """Whether trial ``number`` falls beyond the budget: ``total`` live trials were asked before it."""
    from optuna.trial import TrialState

    earlier = [
        t for t in study.get_trials(deepcopy=False) if t.number < number and t.state != TrialState.FAIL
    ]
    return len(earlier) >= total


def check_format(study: optuna.Study, url: str, metric: str) -> None:
    attrs = study.user_attrs
    found = attrs.get(FORMAT_ATTR)
    if found != STUDY_FORMAT:
        raise StoreError(
            f"Study {study.study_name!r} in {redact(url)} was written by another version "
            f"(dcloop study format {found!r}; this dcloop reads {STUDY_FORMAT}). Use another --study name."
        )
    if attrs.get(DIRECTION_ATTR) != metric:
        raise DcloopError(
            f"Study {study.study_name!r} scores trials on {attrs.get(DIRECTION_ATTR)!r}, not tune.metric {metric!r}."
        )


def load_existing(storage: optuna.storages.RDBStorage, name: str, url: str) -> optuna.Study | None:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def create(
    storage: optuna.storages.RDBStorage, name: str, metric: str, dataset_id: str
) -> optuna.Study | None:
    """Create the study; None when another worker created it first."""
    import optuna

    try:
        study = optuna.create_study(
            study_name=name, storage=storage, direction="minimize" if metric == "val_loss" else "maximize"
        )
    except optuna.exceptions.DuplicatedStudyError:
        return None
    study.set_user_attr(FORMAT_ATTR, STUDY_FORMAT)
    study.set_user_attr(DIRECTION_ATTR, metric)
    study.set_user_attr(DATASET_ATTR, dataset_id)
    return study


def missing(name: str, url: str) -> NotFoundError:
    return NotFoundError(f"No study {name!r} in {redact(url)} to resume. Start it without --resume.")


def finished(name: str, done: int, total: int) -> DcloopError:
    return DcloopError(
        f"Study {name!r} is finished: {done} of {total} trials done. Raise --trials to run more, or use another --study."
    )
