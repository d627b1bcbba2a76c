"""HTML reports of plans: training (figures, memory breakdown, what-if plot) and serving (figures,
batch sweep plot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dcloop.plan._catalog import Accelerator
from dcloop.plan._serving import ServingPlan
from dcloop.plan._training import TrainingPlan
from dcloop.plan._whatif import WhatIfRow
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
        _pairs("Plan", ["figure", "value"], summary),
        _pairs("Memory per accelerator (GB)", ["part", "GB"], memory),
    ]
    if rows:
        figure = what_if_figure(rows)
        sections.append(
            _plotted("What if", WHAT_IF_COLUMNS, rows, figure, "wall time against accelerator count")
        )
    subtitle = f"{plan.spec.model.name} on {plan.count} x {plan.accelerator.label}"
    return write_report(path, "dcloop training plan", sections, subtitle=subtitle)


BATCH_COLUMNS = (
    "batch",
    "latency_s",
    "decode_step_s",
    "decode_bound",
    "decode_tokens_per_s_per_accelerator",
    "requests_per_s_per_replica",
    "replicas",
    "accelerators",
    "cost_usd_per_million_tokens",
)


def batch_sweep(plan: ServingPlan, catalog: Mapping[str, Accelerator] | None = None) -> list[ServingPlan]:
    """The same replica (tensor-parallel degree) at batch 1, 2, 4, ... up to the plan's batch."""
    from dataclasses import replace

    from dcloop.plan._serving import plan_serving

    sizes, size = [], 1
    while size < plan.batch:
        sizes.append(size)
        size *= 2
    return [plan_serving(replace(plan.spec, batch=b, tp=plan.tp), catalog) for b in [*sizes, plan.batch]]


def batch_figure(sweep: Sequence[ServingPlan]) -> object:
    """Decode tokens/s per accelerator and request latency against batch size (log x)."""
    fig, ax = new_figure(7.0, 4.5)
    batches = [p.batch for p in sweep]
    ax.plot(batches, [p.decode_tokens_per_s_per_accelerator for p in sweep], marker="o", color="C0")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent sequences per replica (batch)")
    ax.set_ylabel("decode tokens/s per accelerator", color="C0")
    ax.grid(True, which="both", alpha=0.3)
    latency = ax.twinx()
    latency.plot(batches, [p.latency_s for p in sweep], marker="s", color="C1")
    latency.set_ylabel("latency per request (s)", color="C1")
    return fig


def write_serving_report(path: Path, plan: ServingPlan, sweep: Sequence[ServingPlan] = ()) -> Path:
    """Write the serving plan (and its batch sweep table and plot, when given) as one HTML page."""
    sections = [_pairs("Plan", ["figure", "value"], plan.summary())]
    if sweep:
        figure = batch_figure(sweep)
        alt = "decode throughput and latency against batch size"
        sections.append(_plotted("Batch size", BATCH_COLUMNS, sweep, figure, alt))
    subtitle = f"{plan.spec.model.name} on {plan.accelerators} x {plan.accelerator.label}"
    return write_report(path, "dcloop serving plan", sections, subtitle=subtitle)


def _pairs(title: str, header: list[str], values: Mapping[str, object]) -> Section:
    return Section(title).table(header, [[k, v] for k, v in values.items()])


def _plotted(
    title: str, columns: Sequence[str], records: Sequence[object], figure: object, alt: str
) -> Section:
    """A table of ``columns`` read off each record, with its figure under it."""
    section = Section(title).table(list(columns), [[getattr(r, c) for c in columns] for r in records])
    return section.figure(figure, alt=alt)
