"""One turn of the loop, stage after stage, resumable:

    prepare -> train -> optimize -> register -> gate -> deploy -> feedback -> monitor -> retrain

The turn is recorded in the store when it starts and every step when it finishes, with its typed
output. ``run_loop(ws, resume=True)`` reopens the newest unfinished turn, skips its finished steps,
reads their outputs back, and resumes an interrupted training run from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from dcloop.errors import ConfigError, NotFoundError
from dcloop.loop._steps import STEPS, TABLE, Context, Step, Traffic, read_back, recorded, status
from dcloop.store import turns as q
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
T = TypeVar("T")
PLACEMENT = "cluster"  # key of a step's recorded outputs that says where it ran and what it used
StepRunner = Callable[[Step[Any], Context], tuple[Any, dict[str, Any] | None]]
"""Runs one step: returns its output and, when it ran elsewhere (a cluster node), where and at what cost."""


def run_here(step: Step[Any], ctx: Context) -> tuple[Any, dict[str, Any] | None]:
    """The default runner: the step in this process, nothing more to record."""
    return step.run(ctx), None


@dataclass(frozen=True)
class StepResult:
    """One step of a turn: its status, its typed output, and that output as recorded (JSON)."""

    name: str
    status: str  # finished, skipped
    outputs: dict[str, Any]
    wall_s: float
    reused: bool = False  # finished in an earlier, interrupted run of this turn
    output: Any = field(default=None, repr=False, compare=False)
    placement: dict[str, Any] | None = None  # the node that ran it and its cost (loop --cluster)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "status", "outputs", "wall_s", "reused", "placement")}

    def brief(self, limit: int = 110) -> str:
        """The outputs as ``key=value`` pairs on one line, content ids shortened to 12 characters."""
        parts = []
        for key, value in self.outputs.items():
            if isinstance(value, str) and len(value) >= 32 and set(value) <= set(string.hexdigits):
                value = value[:12]
            elif isinstance(value, float):
                value = f"{value:.4g}"
            elif isinstance(value, dict | list):
                value = json.dumps(value, default=str)
            parts.append(f"{key}={value}")
        text = " ".join(parts)
        return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class LoopTurn:
    """A turn's record: its steps in order, everything they produced, and the turn report."""

    id: str
    number: int
    status: str  # finished, paused
    steps: list[StepResult]
    report: Path | None = None

    @property
    def outputs(self) -> dict[str, Any]:
        """Every step's recorded outputs in one object (the step outputs' field names do not clash)."""
        merged: dict[str, Any] = {}
        for step in self.steps:
            merged.update(step.outputs)
        return merged

    def output(self, kind: type[T]) -> T | None:
        """The typed output of the step that produces ``kind`` (None before that step ran)."""
        return next((s.output for s in self.steps if isinstance(s.output, kind)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "status": self.status,
            "steps": [s.to_dict() for s in self.steps],
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
    runner: StepRunner = run_here,
) -> LoopTurn:
    """Run one turn (or finish the newest unfinished one with ``resume``).

    ``stop_after`` pauses the turn after that step (resume it later); ``traffic`` is called by the
    feedback step to send requests to the served model; ``on_step`` sees each step as it ends;
    ``runner`` runs each step (here by default; ``dcloop.cluster.loop_on_cluster`` as a Ray task).
    """
    if stop_after is not None and stop_after not in STEPS:
        raise ConfigError(f"--until must be one of {', '.join(STEPS)}. Got {stop_after!r}.")
    record = _open_turn(ws, resume)
    done = {s.step: s for s in record.steps}
    ctx = Context(ws, record.number, traffic)
    results: list[StepResult] = []
    for position, step in enumerate(TABLE):
        earlier = done.get(step.name)
        output = read_back(step.output, earlier.outputs) if earlier is not None else None
        if earlier is not None and output is not None:
            outputs = dict(earlier.outputs)
            placement = outputs.pop(PLACEMENT, None)
            result = StepResult(step.name, earlier.status, outputs, earlier.wall_s, True, output, placement)
            log.info("turn %d: %s already finished, reusing its outputs", record.number, step.name)
        else:
            result = _run_step(ctx, record, position, step, runner)
        ctx.done[step.output] = result.output
        results.append(result)
        if on_step is not None:
            on_step(result)
        if step.name == stop_after and position < len(TABLE) - 1:
            q.set_status(ws.store, record.id, "paused")
            return LoopTurn(record.id, record.number, "paused", results)
    q.set_status(ws.store, record.id, "finished")
    from dcloop.loop._report import write_turn_report

    turn = LoopTurn(record.id, record.number, "finished", results)
    report = write_turn_report(ws.reports_dir / f"loop-turn-{record.number}.html", turn, ws.config.monitor)
    return replace(turn, report=report)


def _run_step(
    ctx: Context, turn: q.TurnRecord, position: int, step: Step[Any], runner: StepRunner
) -> StepResult:
    """Run one step and record it (with where it ran, if elsewhere); a failure marks the turn failed
    (resume it after the fix)."""
    start = time.perf_counter()
    try:
        output, placement = runner(step, ctx)
    except BaseException as exc:
        q.set_status(ctx.ws.store, turn.id, "failed", f"{step.name}: {type(exc).__name__}: {exc}"[:2000])
        raise
    wall = time.perf_counter() - start
    outputs, state = recorded(output), status(output)
    stored = outputs | ({PLACEMENT: placement} if placement else {})
    q.finish_step(ctx.ws.store, turn.id, step.name, position, stored, wall, state)
    log.info("turn %d: %s %s in %.1f s", turn.number, step.name, state, wall)
    return StepResult(step.name, state, outputs, wall, output=output, placement=placement)


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
