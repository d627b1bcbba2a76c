"""The loop controller's records: a lease per model, every decision, and turns people asked for.

Tables ``loop_leases``, ``loop_decisions`` and ``loop_requests``. The lease is how two controllers (or
a controller and a person running ``dcloop loop``) never run two turns of one model at once: taking
it is one conditional write that only one of several racing processes wins, on SQLite (the database
write lock) and on PostgreSQL (the row lock), so it holds across machines sharing a PostgreSQL store.
A holder that dies stops renewing; its lease expires and the next taker resumes the turn. Every
function takes a Store and runs one transaction; returned records are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dcloop.store import _schema as s
from dcloop.store._store import Store


@dataclass(frozen=True)
class Lease:
    """Who holds the turn lease of ``name`` and until when."""

    name: str
    owner: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Decision:
    """One thing the controller decided: a trigger fired (or not) and what came of it."""

    id: int
    at: datetime
    model: str
    trigger: str
    outcome: str
    reason: str
    figures: dict[str, Any]
    owner: str
    turn_id: str | None = None


@dataclass(frozen=True)
class TurnRequest:
    """A turn a person asked for (``dcloop loop --request "reason"``), pending until a controller runs it."""

    id: int
    model: str
    reason: str
    created_at: datetime
    handled_at: datetime | None = None


# -- the lease -------------------------------------------------------------------------------------


def acquire_lease(store: Store, name: str, owner: str, ttl_s: float, now: datetime) -> Lease:
    """Take (or renew) the lease of ``name`` for ``ttl_s`` seconds; returns the lease as it stands.

    The caller holds it when the returned lease's owner is ``owner``; otherwise it names the holder.
    """
    expires = now + timedelta(seconds=ttl_s)
    table = s.loop_leases
    with store.transaction() as conn:
        values = {"name": name, "owner": owner, "acquired_at": now, "expires_at": expires}
        conn.execute(_insert_if_absent(conn, values))
        conn.execute(  # renew one's own lease, or take over one whose holder stopped renewing
            update(table)
            .where(table.c.name == name)
            .where((table.c.owner == owner) | (table.c.expires_at <= now))
            .values(
                owner=owner,
                expires_at=expires,
                acquired_at=case((table.c.owner == owner, table.c.acquired_at), else_=now),
            )
        )
        row = conn.execute(select(table).where(table.c.name == name)).mappings().one()
    return Lease(**row)


def _insert_if_absent(conn: Connection, values: dict[str, Any]) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(s.loop_leases).values(**values).on_conflict_do_nothing(index_elements=["name"])


def take_over_lease(store: Store, name: str, holder: str, owner: str, ttl_s: float, now: datetime) -> bool:
    """Take the lease from ``holder`` before it expires (it is known dead); False if it moved meanwhile."""
    table = s.loop_leases
    with store.transaction() as conn:
        taken = conn.execute(
            update(table)
            .where((table.c.name == name) & (table.c.owner == holder))
            .values(owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=ttl_s))
        )
    return taken.rowcount == 1


def renew_lease(store: Store, name: str, owner: str, ttl_s: float, now: datetime) -> bool:
    """Extend a lease ``owner`` holds; False when it lost it (expired and taken by another)."""
    table = s.loop_leases
    with store.transaction() as conn:
        renewed = conn.execute(
            update(table)
            .where((table.c.name == name) & (table.c.owner == owner))
            .values(expires_at=now + timedelta(seconds=ttl_s))
        )
    return renewed.rowcount == 1


def release_lease(store: Store, name: str, owner: str) -> None:
    """Give the lease back (only its owner can); the next taker gets it at once."""
    table = s.loop_leases
    with store.transaction() as conn:
        conn.execute(table.delete().where((table.c.name == name) & (table.c.owner == owner)))


def get_lease(store: Store, name: str) -> Lease | None:
    with store.connect() as conn:
        row = conn.execute(select(s.loop_leases).where(s.loop_leases.c.name == name)).mappings().first()
    return None if row is None else Lease(**row)


# -- decisions -------------------------------------------------------------------------------------


def record_decision(
    store: Store,
    *,
    at: datetime,
    model: str,
    trigger: str,
    outcome: str,
    reason: str,
    figures: dict[str, Any],
    owner: str,
    turn_id: str | None = None,
) -> Decision:
    values = {
        "at": at,
        "model": model,
        "trigger": trigger,
        "outcome": outcome,
        "reason": reason,
        "figures": figures,
        "owner": owner,
        "turn_id": turn_id,
    }
    with store.transaction() as conn:
        decision_id = _new_id(conn.execute(s.loop_decisions.insert().values(**values)))
    return Decision(id=decision_id, **values)  # type: ignore[arg-type]


def cpu_hours_since(store: Store, model: str, since: datetime) -> float:
    """CPU-hours of the turns whose end was recorded at or after ``since`` (their ``cpu_s`` figure)."""
    return _turn_figure_sum(store, model, since, "cpu_s") / 3600


def energy_kwh_since(store: Store, model: str, since: datetime) -> float:
    """Energy (kWh, before PUE) of the turns whose end was recorded at or after ``since``."""
    return _turn_figure_sum(store, model, since, "energy_kwh")


def _turn_figure_sum(store: Store, model: str, since: datetime, key: str) -> float:
    table = s.loop_decisions
    query = select(table.c.figures).where(
        (table.c.model == model)
        & (table.c.at >= since)
        & table.c.outcome.in_(["finished", "paused", "failed", "stopped"])
    )
    with store.connect() as conn:
        return sum(float(f.get(key) or 0.0) for f in conn.execute(query).scalars())


def list_decisions(store: Store, model: str | None = None, limit: int | None = None) -> list[Decision]:
    """Decisions oldest first (the newest ``limit`` of them)."""
    table = s.loop_decisions
    query = select(table).order_by(table.c.id.desc())
    if model is not None:
        query = query.where(table.c.model == model)
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [Decision(**row) for row in reversed(rows)]


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an insert into a table with an integer key
    return int(key[0])


# -- manual requests -------------------------------------------------------------------------------


def add_request(store: Store, model: str, reason: str, now: datetime) -> TurnRequest:
    with store.transaction() as conn:
        values = {"model": model, "reason": reason, "created_at": now}
        request_id = _new_id(conn.execute(s.loop_requests.insert().values(**values)))
    return TurnRequest(id=request_id, model=model, reason=reason, created_at=now)


def pending_requests(store: Store, model: str) -> list[TurnRequest]:
    table = s.loop_requests
    query = select(table).where((table.c.model == model) & table.c.handled_at.is_(None)).order_by(table.c.id)
    with store.connect() as conn:
        return [TurnRequest(**row) for row in conn.execute(query).mappings()]


def mark_handled(store: Store, ids: list[int], now: datetime) -> None:
    with store.transaction() as conn:
        conn.execute(update(s.loop_requests).where(s.loop_requests.c.id.in_(ids)).values(handled_at=now))


# -- what triggers look at -------------------------------------------------------------------------


def labels_since(store: Store, model: str, since: datetime | None) -> int:
    """Labels posted for predictions of ``model`` at or after ``since`` (all of them when None)."""
    query = (
        select(func.count())
        .select_from(s.feedback.join(s.predictions, s.feedback.c.prediction_id == s.predictions.c.id))
        .where(s.predictions.c.model_name == model)
    )
    if since is not None:
        query = query.where(s.feedback.c.created_at >= since)
    with store.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def prediction_mark(store: Store, model: str) -> tuple[int, int]:
    """(predictions, labels) of ``model`` so far: when neither moved, monitoring would find the same."""
    with store.connect() as conn:
        predictions = conn.execute(
            select(func.count()).select_from(s.predictions).where(s.predictions.c.model_name == model)
        ).scalar()
    return int(predictions or 0), labels_since(store, model, None)


@dataclass(frozen=True)
class TurnMark:
    """The newest loop turn as the controller sees it."""

    id: str
    number: int
    status: str  # running, paused, finished, failed
    started_at: datetime
    ended_at: datetime | None  # finished or failed at; a paused turn: its last step; running: None


def newest_turn(store: Store) -> TurnMark | None:
    turns, steps = s.loop_turns, s.loop_steps
    with store.connect() as conn:
        row = conn.execute(select(turns).order_by(turns.c.number.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        ended = row["finished_at"]
        if ended is None and row["status"] != "running":
            last_step = select(func.max(steps.c.finished_at)).where(steps.c.turn_id == row["id"])
            ended = conn.execute(last_step).scalar() or row["started_at"]
    if ended is not None and ended.tzinfo is None:  # max() of a SQLite column skips the column type
        ended = ended.replace(tzinfo=UTC)
    return TurnMark(row["id"], row["number"], row["status"], row["started_at"], ended)


def turns_started_since(store: Store, since: datetime) -> int:
    query = select(func.count()).select_from(s.loop_turns).where(s.loop_turns.c.started_at >= since)
    with store.connect() as conn:
        return int(conn.execute(query).scalar() or 0)
