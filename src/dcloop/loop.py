"""One turn of the loop, stage after stage, resumable:

    prepare -> train -> optimize -> register -> gate -> deploy -> feedback -> monitor -> retrain

The turn is recorded in the store when it starts and every step when it finishes, with the outputs
later steps need. ``run_loop(ws, resume=True)`` reopens the newest unfinished turn, skips its finished
steps, reuses their outputs, and resumes an interrupted training run from its last checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dcloop.errors import ConfigError, NotFoundError
from dcloop.workspace import Workspace

from dcloop._loop_steps import RUNNERS, Traffic
from dcloop.store import turns as q

log = logging.getLogger(__name__)

STEPS = ("prepare", "train", "optimize", "register", "gate", "deploy", "feedback", "monitor", "retrain")


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str  # finished, skipped
    outputs: dict[str, Any]
    wall_s: float
    reused: bool = False  # finished in an earlier, interrupted run of this turn


@dataclass(frozen=True)
class LoopTurn:
    """A turn's record: its steps in order, everything they produced, and the turn report."""

    id: str
    number: int
    status: str  # finished, paused
    steps: list[StepResult]
    outputs: dict[str, Any]
    report: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # in-process results (MonitorResult...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "status": self.status,
            "steps": [s.__dict__ for s in self.steps],
            "outputs": self.outputs,
            "report": str(self.report) if self.report else None,
        }


def run_loop(
    ws: Workspace,
    resume: bool = False,
    *,
    stop_after: str | None = None,
    traffic: Traffic | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> LoopTurn:
    """Run one turn (or finish the newest unfinished one with ``resume``).

    ``stop_after`` pauses the turn after that step (resume it later); ``traffic`` is called by the
    feedback step to send requests to the served model; ``on_step`` sees each step as it ends.
    """
    if stop_after is not None and stop_after not in STEPS:
        raise ConfigError(f"--until must be one of {', '.join(STEPS)}. Got {stop_after!r}.")
    turn = _open_turn(ws, resume)
    done = {s.step: s for s in turn.steps}
    outputs = turn.outputs()
    results: list[StepResult] = []
    extra: dict[str, Any] = {}
    for position, step in enumerate(STEPS):
        if step in done:
            record = done[step]
            results.append(StepResult(step, record.status, record.outputs, record.wall_s, reused=True))
            _notify(on_step, results[-1])
            log.info("turn %d: %s already finished, reusing its outputs", turn.number, step)
            continue
        start = time.perf_counter()
        try:
            status, produced = RUNNERS[step](ws, turn, outputs, traffic, extra)
        except BaseException as exc:
            q.set_status(ws.store, turn.id, "failed", f"{step}: {type(exc).__name__}: {exc}"[:2000])
            raise
        wall = time.perf_counter() - start
        q.finish_step(ws.store, turn.id, step, position, produced, wall, status)
        outputs.update(produced)
        results.append(StepResult(step, status, produced, wall))
        _notify(on_step, results[-1])
        log.info("turn %d: %s %s in %.1f s", turn.number, step, status, wall)
        if step == stop_after and position < len(STEPS) - 1:
            q.set_status(ws.store, turn.id, "paused")
            return LoopTurn(turn.id, turn.number, "paused", results, outputs, extra=extra)
    q.set_status(ws.store, turn.id, "finished")
    from dcloop._loop_report import write_turn_report

    finished = LoopTurn(turn.id, turn.number, "finished", results, outputs, extra=extra)
    report = write_turn_report(ws.reports_dir / f"loop-turn-{turn.number}.html", finished, ws.config.monitor)
    return replace(finished, report=report)


def _notify(on_step: Callable[[StepResult], None] | None, step: StepResult) -> None:
    if on_step is not None:
        on_step(step)


def list_turns(ws: Workspace) -> list[q.TurnRecord]:
    """Every recorded turn with its finished steps, oldest first."""
    return q.list_turns(ws.store)


def _open_turn(ws: Workspace, resume: bool) -> q.TurnRecord:
    if not resume:
        return q.start_turn(ws.store, ws.config.model_dump(mode="json"))
    turn = q.latest_open_turn(ws.store)
    if turn is None:
        raise NotFoundError("No unfinished loop turn to resume; start one with `dcloop loop`.")
    q.set_status(ws.store, turn.id, "running")
    log.info("resuming turn %d after %s", turn.number, ", ".join(s.step for s in turn.steps) or "no step")
    return turn
