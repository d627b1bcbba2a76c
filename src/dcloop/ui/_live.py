"""The Monitor, Serving and Plan pages. Monitor and Serving refresh themselves: their figures come from
a JSON route the page polls (``/api/monitor``, ``/api/serving``), rendered by the same functions."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from dcloop.ui import _queries as q
from dcloop.ui import _svg as svg
from dcloop.ui._layout import figures, fmt, pct, section, table
from dcloop.workspace import Workspace

CONFIDENCE_BINS = [f"{i / 10:.1f}" for i in range(10)]


def monitor_live(ws: Workspace, model: str | None, days: float | None) -> dict[str, Any]:
    """The live part of the Monitor page: key figures and plots as HTML, and the numbers behind them."""
    data = q.monitor_series(ws, model, days)
    totals = q.version_scores(ws, model, days)
    champion = _champion(ws, model)
    labelled, accuracy, f1 = totals.get(champion or "", (0, None, None))
    head = figures(
        [
            ("model_version", "champion", champion),
            ("labelled", "labelled predictions", labelled),
            ("accuracy", "live accuracy", pct(accuracy)),
            ("f1_macro", "live macro F1", pct(f1)),
            ("bucket", "bucket", f"{data['bucket_s'] // 60} min" if data["bucket_s"] else None),
        ]
    )
    versions = data["versions"]
    minimum = ws.config.monitor.min_accuracy
    acc = [(ref, [(t, a) for t, _, a, _ in v["quality"]]) for ref, v in versions.items() if v["quality"]]
    mf1 = [(ref, [(t, f) for t, _, _, f in v["quality"]]) for ref, v in versions.items() if v["quality"]]
    volume = [(ref, [(t, n) for t, n, _ in v["volume"]]) for ref, v in versions.items()]
    hist = data["histogram"].get(champion or "", next(iter(data["histogram"].values()), [0] * 10))
    plots = "".join(
        [
            svg.line_chart(
                acc,
                "time (UTC)",
                "accuracy",
                title="accuracy over time",
                time_axis=True,
                y_range=(0, 1),
                thresholds=[(minimum, f"alert below {minimum:g}")],
            ),
            svg.line_chart(
                mf1, "time (UTC)", "macro F1", title="macro F1 over time", time_axis=True, y_range=(0, 1)
            ),
            svg.line_chart(
                volume, "time (UTC)", "predictions per bucket", title="predictions over time", time_axis=True
            ),
            svg.bar_chart(
                CONFIDENCE_BINS,
                hist,
                "confidence (bin start)",
                "predictions",
                title="confidence distribution",
            ),
        ]
    )
    rows = [[ref, n, pct(a), pct(f)] for ref, (n, a, f) in totals.items()]
    html = (
        head
        + section("Live quality", plots)
        + section(
            "Per version",
            table(["version", "labelled", "accuracy", "macro F1"], rows, key="monitor_versions"),
        )
    )
    return {
        "html": html,
        "champion": champion,
        "labelled": labelled,
        "accuracy": accuracy,
        "f1_macro": f1,
        "checked_at": datetime.now(UTC).isoformat(),
    }


def _champion(ws: Workspace, model: str | None) -> str | None:
    states = [m for m in q.models(ws) if model is None or m.name == model]
    return next((m.champion.ref for m in states if m.champion), None)


def monitor_page(ws: Workspace, model: str | None, days: float | None) -> str:
    live = monitor_live(ws, model, days)
    query = f"?{'model=' + escape(model) + '&' if model else ''}{'days=' + str(days) if days else ''}"
    form = (
        '<form method="get" action="/monitor" class="filters">'
        f'<label>model <input name="model" value="{escape(model or "")}"></label>'
        f'<label>days <input name="days" value="{"" if days is None else days}"></label><button>show</button></form>'
    )
    drift = (
        '<div id="drift" data-src="/api/monitor/drift'
        + query
        + '"><p class="muted">computing drift\u2026</p></div>'
    )
    return (
        form
        + f'<div id="live" data-poll="/api/monitor{query}" data-every="10">{live["html"]}</div>'
        + section("Input and embedding drift, alerts", drift)
    )


def drift_html(result: Any, psi_threshold: float, ks_pvalue: float) -> str:
    """The drift tables and alerts of a ``dcloop.feedback.monitor`` result."""
    rows = []
    for d in result.drift:
        for feature, value in d.psi.items():
            rows.append([d.ref, f"PSI {feature}", value, psi_threshold, value > psi_threshold])
        if d.embedding:
            p = d.embedding.get("ks_pvalue")
            rows.append([d.ref, "embedding KS p-value", p, ks_pvalue, p is not None and p < ks_pvalue])
    alerts = [[a.kind, a.subject, a.value, a.threshold, a.message] for a in result.alerts]
    return (
        table(["version", "feature", "value", "threshold", "alert"], rows, key="drift")
        + "<h3>Alerts</h3>"
        + table(["kind", "subject", "value", "threshold", "message"], alerts, key="monitor_alerts")
    )


def serving_live(summary: dict[str, Any], url: str) -> dict[str, Any]:
    if "error" in summary:
        html = (
            figures([("requests_per_s", "requests/s", None)])
            + f'<p class="notice">{escape(summary["error"])}</p>'
        )
        return {"html": html, **summary}
    lat = summary["latency_ms"]
    head = figures(
        [
            ("requests_per_s", "requests/s", summary["requests_per_s"]),
            ("p50", "p50 latency (ms)", lat["p50"]),
            ("p95", "p95 latency (ms)", lat["p95"]),
            ("p99", "p99 latency (ms)", lat["p99"]),
            ("mean_batch", "mean batch size", summary["mean_batch_size"]),
            ("queue_depth", "queue depth", summary["queue_depth"]),
            ("errors", "errors", sum(summary["errors"].values())),
        ]
    )
    sizes = list(summary["batch_sizes"].items())
    per_bucket = [n - (sizes[i - 1][1] if i else 0) for i, (_, n) in enumerate(sizes)]
    plot = svg.bar_chart(
        [f"\u2264{le}" for le, _ in sizes], per_bucket, "images per batch", "batches", title="batch sizes"
    )
    errors = table(
        ["kind", "count"], [[k, int(v)] for k, v in sorted(summary["errors"].items())], key="errors"
    )
    status = table(
        ["status", "requests"], [[k, int(v)] for k, v in sorted(summary["status"].items())], key="status"
    )
    html = (
        head
        + f'<p class="muted">from {escape(url)}</p>'
        + section("Batches", plot)
        + section("Errors by kind", errors)
        + section("Answers by status", status)
    )
    return {"html": html, **summary}


def serving_page(live: dict[str, Any]) -> str:
    return f'<div id="live" data-poll="/api/serving" data-every="3">{live["html"]}</div>'


TRAIN_FIELDS = [
    ("preset", "model preset", "llama2-70b"),
    ("params", "or parameters (e.g. 7B)", ""),
    ("tokens", "training tokens", "2T"),
    ("accelerator", "accelerator", ""),
    ("count", "accelerators", ""),
]
SERVE_FIELDS = [
    ("preset", "model preset", "llama3-70b"),
    ("params", "or parameters", ""),
    ("accelerator", "accelerator", ""),
    ("target_rps", "requests/s", "20"),
    ("latency_s", "latency target (s)", ""),
    ("prompt_tokens", "prompt tokens", ""),
    ("output_tokens", "output tokens", ""),
]
PLAN_FIGURES = (
    "accelerator",
    "count",
    "wall_days",
    "accelerator_hours",
    "energy_facility_mwh",
    "co2_t",
    "cost_usd",
    "latency_s",
    "replicas",
    "accelerators",
    "energy_kwh_per_million_tokens",
    "cost_usd_per_million_tokens",
)
PLAN_KEYS = {"train": TRAIN_FIELDS, "serve": SERVE_FIELDS}


def plan_answer(ws: Workspace | None, kind: str, values: dict[str, str]) -> dict[str, Any]:
    """The summary ``dcloop plan train|serve`` prints for the same inputs (same public functions)."""
    from dcloop.config import Config
    from dcloop.plan import load_catalog, plan_serving, plan_training
    from dcloop.plan._spec import build_serving_spec, build_training_spec

    config = ws.config if ws is not None else Config()
    catalog = load_catalog([h.model_dump(exclude_none=True) for h in config.plan.hardware])
    given = {k: v.strip() for k, v in values.items() if v and v.strip()}
    if kind == "train":
        return plan_training(build_training_spec(given, config.plan, config.energy), catalog).summary()
    return plan_serving(build_serving_spec(given, config.plan, config.energy), catalog).summary()


def plan_page(kind: str, values: dict[str, str], answer: dict[str, Any] | None, error: str | None) -> str:
    forms = []
    for name, fields in PLAN_KEYS.items():
        mine = values if name == kind else {}
        inputs = "".join(
            f'<label>{escape(text)} <input name="{key}" value="{escape(mine.get(key, default if not mine else ""))}"></label>'
            for key, text, default in fields
        )
        forms.append(
            f'<form method="get" action="/plan" class="plan"><h2>plan {name}</h2><input type="hidden" name="kind" value="{name}">{inputs}<button>plan {name}</button></form>'
        )
    out = '<div class="columns">' + "".join(forms) + "</div>"
    if error:
        out += f'<p class="error" role="alert">{escape(error)}</p>'
    if answer:
        flat = [[k, fmt(v)] for k, v in answer.items() if not isinstance(v, dict | list)]
        top = [k for k in PLAN_FIGURES if k in answer and not isinstance(answer[k], dict | list)]
        out = figures([(k, k.replace("_", " "), answer[k]) for k in top]) + out
        out += section(f"{kind} plan", table(["quantity", "value"], flat, key="plan"))
        for key, value in answer.items():
            if isinstance(value, dict):
                out += section(key, table(["quantity", "value"], [[k, fmt(v)] for k, v in value.items()]))
    return out
