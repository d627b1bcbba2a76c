"""One full turn of the loop, stage after stage, resumable; its report.

``run_loop(ws)`` runs prepare -> train -> optimize -> register -> gate -> deploy -> feedback ->
monitor -> retrain, recording each step's typed output; ``run_loop(ws, resume=True)`` finishes the
newest unfinished turn. ``watch(ws)`` is the controller that runs turns when ``loop.triggers`` fire;
``request_turn(ws, reason)`` asks it for one.
"""

from __future__ import annotations

from dcloop.loop._controller import request_turn, watch
from dcloop.loop._report import turn_sections, write_turn_report
from dcloop.loop._steps import (
    STEPS,
    Context,
    Deployed,
    Fed,
    Gated,
    Monitored,
    Optimized,
    Prepared,
    Registered,
    Retrained,
    Step,
    Traffic,
    Trained,
)
from dcloop.loop._triggers import Firing, Observation, fired, held_back
from dcloop.loop._turn import LoopTurn, StepResult, StepRunner, list_turns, run_here, run_loop

__all__ = [
    "STEPS",
    "Context",
    "Deployed",
    "Fed",
    "Firing",
    "Gated",
    "LoopTurn",
    "Monitored",
    "Observation",
    "Optimized",
    "Prepared",
    "Registered",
    "Retrained",
    "Step",
    "StepResult",
    "StepRunner",
    "Traffic",
    "Trained",
    "fired",
    "held_back",
    "list_turns",
    "request_turn",
    "run_here",
    "run_loop",
    "turn_sections",
    "watch",
    "write_turn_report",
]
