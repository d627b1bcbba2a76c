"""The HTML report of `dcloop demo`: the figures, the loop turn that produced them, and its monitoring."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcloop.config import MonitorConfig
from dcloop.loop import turn_sections
from dcloop.report import Section, new_figure, write_report

if TYPE_CHECKING:
    from pathlib import Path

    from dcloop.demo import DemoResult
    from dcloop.loop import LoopTurn


def write_demo_report(result: DemoResult, turn: LoopTurn, cfg: MonitorConfig) -> Path:
    figures = Section("The loop closing")
    noun = "texts" if result.task == "text" else "images"
    figures.text(
        f"Shift '{result.shift}': the champion {result.champion} served {result.stream} shifted {noun}; "
        f"{result.labelled} got labels through /feedback. Accuracies are on {result.held_out} held-out {noun}."
    )
    figures.table(["figure", "value"], summary_rows(result))
    fig, ax = new_figure(6, 3.2)
    names = ["unshifted\n(champion)", "shifted before\n(champion)", "shifted after\n(retrained)"]
    values = [result.accuracy_unshifted, result.accuracy_shifted_before, result.accuracy_shifted_after]
    ax.bar(names, values, color=["#4a7", "#b00020", "#36c"])
    for i, v in enumerate(values):
        ax.text(i, v + 0.01, f"{v:.3f}", ha="center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    figures.figure(fig, alt="accuracy before and after")
    for reason in result.gate_reasons:
        figures.text(reason, css="alert")
    links = Section("Reports").table(["report", "path"], list(result.reports.items()))
    sections = [figures, *turn_sections(turn, cfg), links]
    return write_report(
        result.report, "dcloop demo: closing the loop", sections, f"workspace {result.workspace}"
    )


def summary_rows(result: DemoResult) -> list[list[object]]:
    """The demo's figures as (name, value) rows; the CLI prints the same rows."""
    recovered = "n/a" if result.recovered is None else f"{result.recovered:.1%}"
    tested = "n/a" if result.run_accuracy is None else round(result.run_accuracy, 4)
    return [
        ["champion test accuracy (its data set's test split)", tested],
        ["accuracy, unshifted (champion)", round(result.accuracy_unshifted, 4)],
        ["accuracy, shifted, before retraining", round(result.accuracy_shifted_before, 4)],
        ["accuracy, shifted, after retraining", round(result.accuracy_shifted_after, 4)],
        ["share of the lost accuracy recovered", recovered],
        ["champion -> challenger", f"{result.champion} -> {result.challenger or 'none'}"],
        ["promoted", result.promoted],
        ["alerts raised", len(result.alerts)],
        ["wall time (s)", round(result.wall_s, 1)],
    ]
