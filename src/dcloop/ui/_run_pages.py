"""The Runs pages: the list with filters, one run (curves, confusion matrix, per class, cost), a comparison."""

from __future__ import annotations

from typing import Any

from dcloop.store import runs as store_runs
from dcloop.ui import _queries as q
from dcloop.ui import _svg as svg
from dcloop.ui._layout import figures, fmt, link, pct, section, table
from dcloop.ui._model_pages import variants_table
from dcloop.workspace import Workspace


def _cost(run: store_runs.RunRecord) -> dict[str, Any]:
    cost = run.metrics.get("cost") or {}
    return {
        k: cost.get(k)
        for k in ("wall_s", "cpu_s", "peak_rss_mb", "energy_kwh", "co2_kg", "cost_usd", "energy_source")
    }


def runs_page(ws: Workspace, kind: str | None, status: str | None, model: str | None) -> str:
    found = q.run_list(ws, kind, status, model, limit=100)
    rows = []
    for r in found:
        cost = _cost(r)
        box = f'<input type="checkbox" name="ids" value="{r.id}" aria-label="compare {r.id[:8]}">'
        rows.append(
            [
                box,
                link(f"/runs/{r.id}", r.id[:12]),
                r.kind,
                r.model,
                r.status,
                r.created_at,
                pct(r.metrics.get("accuracy")),
                pct(r.metrics.get("f1_macro")),
                cost["wall_s"],
                cost["energy_kwh"],
                cost["co2_kg"],
                cost["cost_usd"],
            ]
        )
    filters = (
        '<form method="get" action="/runs" class="filters">'
        f'<label>kind <input name="kind" value="{kind or ""}"></label>'
        f'<label>status <input name="status" value="{status or ""}"></label>'
        f'<label>model <input name="model" value="{model or ""}"></label><button>filter</button></form>'
    )
    cols = [
        "",
        "run",
        "kind",
        "model",
        "status",
        "created",
        "accuracy",
        "F1 macro",
        "wall s",
        "kWh",
        "CO2 kg",
        "USD",
    ]
    compare = f'<form method="get" action="/runs/compare">{table(cols, rows, key="runs", raw={0, 1})}<button>compare selected</button></form>'
    head = figures(
        [
            ("runs", "runs shown", len(found)),
            ("finished", "finished", sum(r.status == "finished" for r in found)),
        ]
    )
    return head + filters + section("Runs", compare)


def _curves(
    epochs: list[store_runs.EpochRecord], keys: list[str]
) -> list[tuple[str, list[tuple[float, float]]]]:
    return [
        (k, [(e.epoch, float(e.metrics[k])) for e in epochs if isinstance(e.metrics.get(k), int | float)])
        for k in keys
    ]


def run_page(ws: Workspace, ref: str) -> str:
    d = q.run_detail(ws, ref)
    run, m, cost = d["run"], d["run"].metrics, _cost(d["run"])
    head = figures(
        [
            ("accuracy", "test accuracy", pct(m.get("accuracy"))),
            ("f1_macro", "F1 macro", pct(m.get("f1_macro"))),
            ("wall_s", "wall time (s)", cost["wall_s"]),
            ("energy_kwh", "energy (kWh)", cost["energy_kwh"]),
            ("co2_kg", "CO2 (kg)", cost["co2_kg"]),
            ("cost_usd", "cost (USD)", cost["cost_usd"]),
        ]
    )
    keys = sorted({k for e in d["epochs"] for k, v in e.metrics.items() if isinstance(v, int | float)})
    losses = [k for k in keys if "loss" in k]
    scores = [k for k in keys if "acc" in k or "f1" in k]
    parts = [
        section(
            "Curves",
            svg.line_chart(_curves(d["epochs"], losses), "epoch", "loss", title="loss per epoch"),
            svg.line_chart(_curves(d["epochs"], scores), "epoch", "score", title="scores per epoch"),
        )
    ]
    classes = m.get("classes") or []
    if m.get("confusion_matrix"):
        parts.append(
            section(
                "Confusion matrix (test split)",
                svg.heatmap(
                    m["confusion_matrix"],
                    classes,
                    title="confusion matrix",
                    x_label="predicted class",
                    y_label="true class",
                ),
            )
        )
    per_class = [
        [c, pct(v["precision"]), pct(v["recall"]), pct(v["f1"]), v["support"]]
        for c, v in (m.get("per_class") or {}).items()
    ]
    parts.append(
        section(
            "Per class", table(["class", "precision", "recall", "F1", "support"], per_class, key="per_class")
        )
    )
    parts.append(section("Cost", table(["measure", "value"], [[k, v] for k, v in cost.items()], key="cost")))
    lineage = [
        ["data set version", link(f"/data?version={run.dataset_id[:12]}", run.dataset_id[:12])],
        ["parent run", fmt(run.parent_run_id)],
        ["seed", fmt(run.lineage.get("seed"))],
        ["code", fmt(run.lineage.get("code_version") or run.lineage.get("git"))],
    ]
    parts.append(section("Lineage", table(["of", "value"], lineage, raw={1})))
    parts.append(section("Variants", variants_table(d["variants"])))
    return head + "".join(parts)


def compare_page(ws: Workspace, refs: list[str]) -> str:
    found = [q.run_detail(ws, r) for r in refs]
    keys = [
        "model",
        "kind",
        "status",
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "epochs_run",
    ]
    rows = []
    for key in keys:
        values = [
            getattr(d["run"], key, None) if key in {"model", "kind", "status"} else d["run"].metrics.get(key)
            for d in found
        ]
        rows.append([key, *(pct(v) if isinstance(v, float) and key != "epochs_run" else v for v in values)])
    for key in ("wall_s", "energy_kwh", "co2_kg", "cost_usd"):
        rows.append([key, *(_cost(d["run"])[key] for d in found)])
    curves = [
        (
            d["run"].id[:8],
            [
                (e.epoch, float(e.metrics[k]))
                for e in d["epochs"]
                for k in ("val_accuracy",)
                if isinstance(e.metrics.get(k), int | float)
            ],
        )
        for d in found
    ]
    head = figures([("compared", "runs compared", len(found))])
    return (
        head
        + section("Side by side", table(["", *(d["run"].id[:12] for d in found)], rows, key="compare"))
        + section(
            "Validation accuracy",
            svg.line_chart(curves, "epoch", "validation accuracy", title="validation accuracy per epoch"),
        )
    )
