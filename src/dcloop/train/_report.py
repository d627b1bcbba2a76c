"""The HTML report of one run: summary, training curves, confusion matrix, per-class metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcloop.report import Section, new_figure, write_report
from dcloop.store import RunRecord
from dcloop.train._runs import time_spent


def _curves(history: list[dict[str, float]]) -> Any:
    from matplotlib.ticker import MaxNLocator

    fig, _ = new_figure(12.0, 3.4)
    fig.clf()
    epochs = list(range(1, len(history) + 1))
    panels = [
        ("loss", ["train_loss", "val_loss"]),
        ("accuracy", ["train_accuracy", "val_accuracy"]),
        ("lr", ["lr"]),
    ]
    for index, (title, keys) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 3, index)
        for key in keys:
            values = [h.get(key) for h in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epoch 1, 2; never 1.2, 1.4
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _confusion(matrix: list[list[int]], classes: list[str]) -> Any:
    size = max(3.0, 0.45 * len(classes) + 2.0)
    fig, ax = new_figure(size, size)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(
                j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black"
            )
    return fig


def write_run_report(
    path: Path, run: RunRecord, history: list[dict[str, float]], metrics: dict[str, Any]
) -> Path:
    """Write ``report.html`` for a finished run and return its path."""
    test = metrics
    cost = metrics.get("cost", {})
    summary = Section("Summary").table(
        ["metric", "value"],
        [
            ["run", run.id],
            ["model", run.model],
            ["data set version", run.dataset_id],
            ["test accuracy", test["accuracy"]],
            ["precision (macro)", test["precision_macro"]],
            ["recall (macro)", test["recall_macro"]],
            ["F1 (macro)", test["f1_macro"]],
            ["ROC-AUC", test.get("roc_auc")],
            ["best epoch", metrics.get("best_epoch")],
            ["epochs run", metrics.get("epochs_run")],
            ["images/s", metrics.get("images_per_s")],
            ["wall s", cost.get("wall_s")],
            ["CPU s", cost.get("cpu_s")],
            ["peak RSS MB", cost.get("peak_rss_mb")],
            ["energy J", f"{cost.get('energy_j', 0.0):.1f} ({cost.get('energy_source', '?')})"],
        ],
    )
    sections = [summary]
    if (spent := time_spent(metrics)) is not None:
        sections.append(
            Section("Time (budget and target)").table(["field", "value"], list(map(list, spent.items())))
        )
    if "tokens_per_s" in metrics:
        sections.append(_throughput(metrics))
    if history:
        sections.append(Section("Training curves").figure(_curves(history), alt="training curves"))
        keys = list(history[0])
        sections.append(
            Section("Epochs").table(
                ["epoch", *keys], [[i, *(h.get(k) for k in keys)] for i, h in enumerate(history, 1)]
            )
        )
    classes = test["classes"]
    sections.append(Section("Confusion matrix (test)").figure(_confusion(test["confusion_matrix"], classes)))
    sections.append(
        Section("Per-class metrics (test)").table(
            ["class", "precision", "recall", "F1", "support"],
            [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in test["per_class"].items()],
        )
    )
    lineage = run.lineage
    sections.append(
        Section("Lineage").table(
            ["field", "value"],
            [
                ["seed", lineage.get("seed")],
                ["code", lineage.get("code")],
                ["versions", lineage.get("versions")],
                ["host", lineage.get("host")],
                ["config", run.config],
            ],
        )
    )
    return write_report(path, f"Run {run.name}", sections, subtitle=f"{run.kind} run {run.id} ({run.status})")


def _throughput(metrics: dict[str, Any]) -> Section:
    """A text run's speed against this machine's measured peak, and the planner's time for the job."""
    return Section("Throughput (text)").table(
        ["figure", "value"],
        [
            ["parameters (trainable)", f"{metrics['params']:,} ({metrics['trainable_params']:,})"],
            ["tokens/s", f"{metrics['tokens_per_s']:.0f}"],
            [
                "model FLOPs per token",
                f"{metrics['model_flops_per_token']:.3g} (6N full, 4N + 6N_trainable LoRA; "
                "N without embeddings)",
            ],
            ["measured peak FLOP/s (fp32 matmul)", f"{metrics['measured_peak_flops_per_s']:.3g}"],
            ["MFU (share of that peak)", f"{metrics['mfu']:.1%}"],
            ["training time measured, s", f"{metrics.get('train_s', 0.0):.1f}"],
            [
                "`dcloop plan train` estimate, s",
                f"{metrics['plan_wall_s']:.1f} (planner's default MFU {metrics['plan_mfu']:.0%})",
            ],
        ],
    )
