"""HTML report of a plan: the figures, the memory breakdown and the what-if plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dcloop.plan.training import TrainingPlan
from dcloop.plan.whatif import WhatIfRow
from dcloop.report import Section, new_figure, write_report

WHAT_IF_COLUMNS = (
    "accelerator",
    "count",
    "wall_days",
    "accelerator_hours",
    "energy_facility_mwh",
    "co2_t",
    "cost_usd",
    "memory_gb",
    "fits",
    "note",
)


def what_if_figure(rows: Sequence[WhatIfRow]) -> object:
    """Wall days against accelerator count, one line per accelerator type (log-log)."""
    fig, ax = new_figure(7.0, 4.5)
    for name in dict.fromkeys(r.accelerator for r in rows):
        points = [(r.count, r.wall_days) for r in rows if r.accelerator == name and r.wall_days is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("accelerators")
    ax.set_ylabel("wall time (days)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def write_plan_report(path: Path, plan: TrainingPlan, rows: Sequence[WhatIfRow] = ()) -> Path:
    """Write the training plan (and its what-if table and plot, when given) as one HTML page."""
    summary = plan.summary()
    memory = summary.pop("memory_per_accelerator_gb")
    sections = [
        Section("Plan").table(["figure", "value"], [[k, v] for k, v in summary.items()]),
        Section("Memory per accelerator (GB)").table(["part", "GB"], [[k, v] for k, v in memory.items()]),
    ]
    if rows:
        what = Section("What if").table(
            WHAT_IF_COLUMNS, [[getattr(r, c) for c in WHAT_IF_COLUMNS] for r in rows]
        )
        what.figure(what_if_figure(rows), alt="wall time against accelerator count")
        sections.append(what)
    subtitle = f"{plan.spec.model.name} on {plan.count} x {plan.accelerator.label}"
    return write_report(path, "dcloop training plan", sections, subtitle=subtitle)
