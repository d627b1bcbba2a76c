"""The HTML report of `dcloop monitor`: alerts, accuracy over time, confidence, PSI, embedding drift."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcloop.config import MonitorConfig
from dcloop.report import Section, new_figure, write_report

if TYPE_CHECKING:
    from dcloop.feedback._monitor import MonitorResult


def monitor_sections(result: MonitorResult, cfg: MonitorConfig) -> list[Section]:
    """The report's sections; the loop and demo reports reuse them."""
    alerts = Section("Alerts")
    if result.alerts:
        for alert in result.alerts:
            alerts.text(alert.message, css="alert")
    else:
        alerts.text("No alert: every check is within its threshold.")
    alerts.table(
        ["threshold", "value"],
        [
            ["monitor.min_accuracy", cfg.min_accuracy],
            ["monitor.psi_threshold", cfg.psi_threshold],
            ["monitor.ks_pvalue", cfg.ks_pvalue],
        ],
    )
    return [alerts, _quality(result), _confidence(result), *_drift(result, cfg)]


def write_monitor_report(path: Path, result: MonitorResult, cfg: MonitorConfig) -> Path:
    window = f"since {result.since:%Y-%m-%d %H:%M}" if result.since else "all predictions"
    subtitle = f"model {result.model}, {window}, checked {result.checked_at:%Y-%m-%d %H:%M:%S} UTC"
    return write_report(path, f"dcloop monitor: {result.model}", monitor_sections(result, cfg), subtitle)


def _quality(result: MonitorResult) -> Section:
    section = Section("Live accuracy on labelled feedback")
    section.table(
        ["version", "predictions", "labelled", "accuracy", "F1 (macro)", "mean confidence"],
        [
            [v.ref, v.predictions, v.labelled, v.accuracy, v.f1_macro, v.mean_confidence]
            for v in result.versions
        ],
    )
    fig, ax = new_figure(7, 3.5)
    for v in result.versions:
        points = [(b["start"], b["accuracy"]) for b in v.buckets if b["accuracy"] is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=v.ref)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("accuracy per time bucket")
    if ax.has_data():
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        # ticks at the span's own precision (days ... fractions of a second): never equal labels
        starts = [b["start"] for v in result.versions for b in v.buckets if b["accuracy"] is not None]
        if max(starts) - min(starts) < timedelta(seconds=1):  # one moment: a minute around it, not years
            ax.set_xlim(min(starts) - timedelta(seconds=30), max(starts) + timedelta(seconds=30))
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.legend()
    return section.figure(fig, alt="accuracy over time")


def _confidence(result: MonitorResult) -> Section:
    section = Section("Prediction confidence")
    fig, ax = new_figure(7, 3.0)
    edges = np.linspace(0.0, 1.0, 11)
    width = 0.1 / max(len(result.versions), 1)
    for i, v in enumerate(result.versions):
        share = np.asarray(v.confidence_counts) / max(v.predictions, 1)
        ax.bar(edges[:-1] + i * width, share, width=width, align="edge", label=v.ref)
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("share of predictions")
    ax.legend()
    return section.figure(fig, alt="confidence histogram")


def _drift(result: MonitorResult, cfg: MonitorConfig) -> list[Section]:
    sections = []
    for d in result.drift:
        section = Section(f"Input drift of {d.ref} against its data set")
        section.text(
            f"reference: {d.reference_n} inputs of {d.dataset_id[:12]} (PSI), its {d.reference_split} split"
            f" (embedding KS); traffic: {d.current_n} stored inputs"
        )
        if d.note:
            section.text(d.note, css="muted")
        if d.psi:
            fig, ax = new_figure(7, 3.0)
            names = list(d.psi)
            ax.bar(
                [n.replace("_", "\n") for n in names],  # "mean\nintensity": labels side by side never overlap
                [d.psi[n] for n in names],
                color=["#b00020" if d.psi[n] > cfg.psi_threshold else "#4a7" for n in names],
            )
            ax.axhline(cfg.psi_threshold, color="k", linestyle="--", label=f"threshold {cfg.psi_threshold}")
            ax.set_ylabel("PSI")
            ax.set_title("population stability index per input feature")
            ax.legend()
            section.figure(fig, alt="PSI per feature")
        if d.embedding is not None:
            e = d.embedding
            section.table(["KS statistic", "p-value (Bonferroni)", "axes tested", "mean shift"], [
                [e["ks_statistic"], e["ks_pvalue"], int(e["components"]), e["mean_shift"]]
            ])  # fmt: skip
        if "projection" in d.plots:
            ref, cur = d.plots["projection"]
            fig, ax = new_figure(7, 3.0)
            bins = np.histogram_bin_edges(np.concatenate([ref[:, 0], cur[:, 0]]), bins=30)
            ax.hist(ref[:, 0], bins=bins, alpha=0.6, density=True, label="reference")
            ax.hist(cur[:, 0], bins=bins, alpha=0.6, density=True, label="traffic")
            ax.set_xlabel("embedding, first principal axis of the reference")
            ax.legend()
            section.figure(fig, alt="embedding drift")
        sections.append(section)
    return sections
