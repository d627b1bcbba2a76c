"""Loop turns and their finished steps (tables ``loop_turns`` and ``loop_steps``).

A turn is recorded when it starts; each step is recorded in one transaction when it finishes, with the
outputs later steps need (ids of the data set version, run, model version...). A resumed turn reads
them back and skips those steps. Every function takes a Store and runs one transaction; returned
records are frozen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from dcloop.errors import NotFoundError
from dcloop.store import _schema as s
from dcloop.store._store import Store


@dataclass(frozen=True)
class StepRecord:
    """One finished (or deliberately skipped) step of a turn."""

    turn_id: str
    step: str
    position: int
    status: str  # finished, skipped
    outputs: dict[str, Any]
    wall_s: float
    finished_at: datetime


@dataclass(frozen=True)
class TurnRecord:
    """One turn of the loop and the steps it has finished so far, in order."""

    id: str
    number: int
    status: str  # running, paused, finished, failed
    started_at: datetime
    config: dict[str, Any]
    finished_at: datetime | None = None
    error: str | None = None
    steps: tuple[StepRecord, ...] = field(default_factory=tuple)

    def outputs(self) -> dict[str, Any]:
        """Every finished step's outputs merged, later steps winning."""
        merged: dict[str, Any] = {}
        for step in self.steps:
            merged.update(step.outputs)
        return merged


def start_turn(store: Store, config: dict[str, Any]) -> TurnRecord:
    with store.transaction() as conn:
        number = int(conn.execute(select(func.max(s.loop_turns.c.number))).scalar() or 0) + 1
        turn = TurnRecord(
            id=uuid.uuid4().hex, number=number, status="running", started_at=datetime.now(UTC), config=config
        )
        conn.execute(
            s.loop_turns.insert().values(
                id=turn.id, number=turn.number, status=turn.status, started_at=turn.started_at, config=config
            )
        )
    return turn


def finish_step(
    store: Store, turn_id: str, step: str, position: int, outputs: dict[str, Any], wall_s: float, status: str
) -> None:
    """Record a step as done; recording it again (a re-run after a resume) replaces it."""
    key = (s.loop_steps.c.turn_id == turn_id) & (s.loop_steps.c.step == step)
    with store.transaction() as conn:
        conn.execute(s.loop_steps.delete().where(key))
        conn.execute(
            s.loop_steps.insert().values(
                turn_id=turn_id,
                step=step,
                position=position,
                status=status,
                outputs=outputs,
                wall_s=wall_s,
                finished_at=datetime.now(UTC),
            )
        )


def set_status(store: Store, turn_id: str, status: str, error: str | None = None) -> None:
    finished = datetime.now(UTC) if status in {"finished", "failed"} else None
    with store.transaction() as conn:
        conn.execute(
            update(s.loop_turns)
            .where(s.loop_turns.c.id == turn_id)
            .values(status=status, error=error, finished_at=finished)
        )


def get_turn(store: Store, turn_id: str) -> TurnRecord:
    with store.connect() as conn:
        row = conn.execute(select(s.loop_turns).where(s.loop_turns.c.id == turn_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"No loop turn {turn_id!r}. See `dcloop loop --help`.")
        steps = conn.execute(
            select(s.loop_steps).where(s.loop_steps.c.turn_id == turn_id).order_by(s.loop_steps.c.position)
        ).mappings()
        return TurnRecord(**row, steps=tuple(StepRecord(**r) for r in steps))


def list_turns(store: Store) -> list[TurnRecord]:
    with store.connect() as conn:
        ids = conn.execute(select(s.loop_turns.c.id).order_by(s.loop_turns.c.number)).scalars().all()
    return [get_turn(store, turn_id) for turn_id in ids]


def latest_open_turn(store: Store) -> TurnRecord | None:
    """The newest turn when it did not finish (killed while running, paused, or failed), else None."""
    query = select(s.loop_turns.c.id, s.loop_turns.c.status).order_by(s.loop_turns.c.number.desc()).limit(1)
    with store.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None or row.status == "finished" else get_turn(store, row.id)
