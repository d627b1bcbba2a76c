"""The optimization report: the variant table, Pareto plots (accuracy vs latency, vs size), the pick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcloop.optimize._select import pareto_front
from dcloop.store.variants import VariantRecord

COLUMNS = [
    "variant",
    "method",
    "accuracy %",
    "drop (pts)",
    "macro F1",
    "agreement %",
    "params",
    "MFLOPs",
    "size KiB",
    "p50 ms",
    "p99 ms",
    "img/s @256",
    "J / 1k",
    "energy",
]
THROUGHPUT_COLUMN = COLUMNS.index("img/s @256")


def columns(records: list[VariantRecord]) -> list[str]:
    """COLUMNS with the throughput column named after what was timed (``text/s @32`` for text)."""
    m = records[0].metrics if records else {}
    named = list(COLUMNS)
    named[THROUGHPUT_COLUMN] = f"{m.get('throughput_unit', 'img')}/s @{m.get('throughput_batch', 256)}"
    return named


def variant_row(record: VariantRecord) -> list[Any]:
    """One table row of a variant: the numbers the CLI table and the HTML report both show."""
    m = record.metrics
    return [
        record.short_id + (" *" if m.get("recommended") else ""),
        record.method,
        round(100 * m["accuracy"], 2),
        round(m["accuracy_drop"], 2),
        round(m["f1_macro"], 4),
        round(100 * m["agreement"], 2),
        m["params"],
        round(m["flops"] / 1e6, 2),
        round(m["size_bytes"] / 1024, 1),
        round(m["latency_p50_ms"], 3),
        round(m["latency_p99_ms"], 3),
        round(m["throughput_ips"], 1),
        round(m["energy_j_per_1k"], 3),
        m["energy_source"],
    ]


def write_optimization_report(
    path: Path, run_id: str, records: list[VariantRecord], recommended: VariantRecord, rule: str
) -> Path:
    from dcloop.report import Section, write_report

    summary = Section("Variants").text(
        f"Recommended: {recommended.short_id} ({recommended.method}), by the rule: {rule}. "
        f"* marks it below. Baseline: the fp32 ONNX export of run {run_id[:12]}."
    )
    summary.table(columns(records), [variant_row(r) for r in records])
    base = records[0].metrics
    ratios = Section("Against the fp32 baseline")
    ratios.table(
        ["variant", "method", "size x smaller", "throughput x", "FLOPs x fewer", "p50 latency x faster"],
        [
            [
                r.short_id,
                r.method,
                round(base["size_bytes"] / r.metrics["size_bytes"], 2),
                round(r.metrics["throughput_ips"] / base["throughput_ips"], 2),
                round(base["flops"] / r.metrics["flops"], 2),
                round(base["latency_p50_ms"] / r.metrics["latency_p50_ms"], 2),
            ]
            for r in records
        ],
    )
    plots = Section("Pareto fronts").text(
        "Filled markers are Pareto-optimal; the ring marks the recommended variant."
    )
    plots.figure(
        _pareto(records, recommended, "latency_p50_ms", "batch-1 latency p50 (ms)"), "accuracy vs latency"
    )
    plots.figure(_pareto(records, recommended, "size_bytes", "ONNX file size (bytes)"), "accuracy vs size")
    params = Section("Parameters").table(
        ["variant", "method", "parent variant", "parameters"],
        [[r.short_id, r.method, (r.parent_variant_id or "")[:12], r.params] for r in records],
    )
    return write_report(
        path, "dcloop optimization", [summary, ratios, plots, params], subtitle=f"run {run_id}"
    )


def _pareto(records: list[VariantRecord], recommended: VariantRecord, key: str, label: str) -> Any:
    from dcloop.report import new_figure

    fig, ax = new_figure()
    points = [(float(r.metrics[key]), 100 * float(r.metrics["accuracy"])) for r in records]
    front = set(pareto_front(points))
    for index, (record, (x, y)) in enumerate(zip(records, points, strict=True)):
        ax.scatter([x], [y], s=60, marker="o", facecolors="C0" if index in front else "none", edgecolors="C0")
        if record.id == recommended.id:
            ax.scatter([x], [y], s=220, facecolors="none", edgecolors="C3", linewidths=2)
        ax.annotate(record.method, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ordered = sorted(points[i] for i in front)
    ax.plot([p[0] for p in ordered], [p[1] for p in ordered], "C0--", linewidth=1)
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    return fig
