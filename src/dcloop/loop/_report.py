"""The HTML report of one loop turn: its steps, what each produced, and the monitoring it saw."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcloop.config import MonitorConfig
from dcloop.deploy._gate import EVIDENCE_COLUMNS, evidence_rows
from dcloop.loop._steps import Monitored, Retrained
from dcloop.report import Section, write_report

if TYPE_CHECKING:
    from dcloop.loop._turn import LoopTurn


def turn_sections(turn: LoopTurn, cfg: MonitorConfig) -> list[Section]:
    """Steps table, then the monitor's sections when monitoring ran in this process."""
    steps = Section("Steps")
    rows = [
        [s.name, s.status + (" (earlier run)" if s.reused else ""), round(s.wall_s, 2), _readable(s.outputs)]
        for s in turn.steps
    ]
    steps.table(["step", "status", "seconds", "outputs"], rows)
    sections = [steps]
    retrained = _result(turn.output(Retrained))
    if retrained is not None:
        gate = Section("Retraining and the promotion gate")
        verdict = "promoted" if retrained.promoted else "refused"
        gate.text(f"challenger {retrained.challenger}: {verdict}; champion was {retrained.champion}.")
        for reason in retrained.reasons:
            gate.text(reason, css="alert")
        gate.table(EVIDENCE_COLUMNS, evidence_rows(retrained.gate))
        gate.text(
            f"data set {retrained.dataset[:12]} = {retrained.base_dataset[:12]} + {retrained.added} of "
            f"{retrained.offered} labelled predictions ({retrained.conflicts} conflicts excluded)."
        )
        sections.append(gate)
    monitored = _result(turn.output(Monitored))
    if monitored is not None:
        from dcloop.feedback._monitor_report import monitor_sections

        sections += monitor_sections(monitored, cfg)
    return sections


def write_turn_report(path: Path, turn: LoopTurn, cfg: MonitorConfig) -> Path:
    return write_report(path, f"dcloop loop turn {turn.number}", turn_sections(turn, cfg), f"turn {turn.id}")


def _readable(outputs: dict[str, Any]) -> dict[str, Any]:
    """A step's outputs for people: content ids cut to 12 characters, long lists summed up (the
    sections below show them whole); the report links any path to another report."""
    shown: dict[str, Any] = {}
    for key, value in outputs.items():
        if isinstance(value, str) and len(value) in (32, 64) and all(c in "0123456789abcdef" for c in value):
            value = value[:12]
        elif isinstance(value, list) and len(value) > 2:
            value = f"{len(value)} (below)"
        elif isinstance(value, dict):
            value = _readable(value)
        shown[key.replace("_", " ")] = value
    return shown


def _result(output: Monitored | Retrained | None) -> Any:
    """The in-process result object of a step that ran in this process (None when reused or skipped)."""
    return None if output is None else output.result
