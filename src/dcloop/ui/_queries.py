"""What each dashboard page shows, read through the store's public query modules.

Plain functions over a Workspace that return plain data; counting happens in SQL (the store's
aggregate queries), so a page costs the same with 200 or 200,000 predictions in the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dcloop.store import controller as decisions
from dcloop.store import datasets, predictions, registry, runs, turns, variants
from dcloop.ui._cache import Aggregates
from dcloop.workspace import Workspace

AGGREGATES = Aggregates()  # counts over the prediction log, shared by the pages of every dashboard app

NICE_BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)


@dataclass(frozen=True)
class ModelState:
    """One registered model: its versions, aliases, and the alias history."""

    name: str
    versions: list[registry.ModelVersion]
    aliases: dict[str, int]
    moves: list[registry.AliasMove]

    @property
    def champion(self) -> registry.ModelVersion | None:
        return self._alias("champion")

    @property
    def challenger(self) -> registry.ModelVersion | None:
        return self._alias("challenger")

    def _alias(self, alias: str) -> registry.ModelVersion | None:
        number = self.aliases.get(alias)
        return next((v for v in self.versions if v.version == number), None)


def models(ws: Workspace) -> list[ModelState]:
    store = ws.store
    return [
        ModelState(
            n, registry.list_versions(store, n), registry.aliases(store, n), registry.alias_moves(store, n)
        )
        for n in registry.model_names(store)
    ]


def bucket_seconds(span_s: float, buckets: int) -> int:
    """The smallest round bucket width that cuts ``span_s`` into at most ``buckets`` buckets."""
    return next((b for b in NICE_BUCKETS if span_s / b <= buckets), NICE_BUCKETS[-1])


def since_days(days: float | None) -> datetime | None:
    return None if days is None else datetime.now(UTC) - timedelta(days=days)


def feedback(ws: Workspace, model: str | None = None) -> dict[str, int]:
    """Predictions logged, labelled, and held out for judging challengers (the gate's share)."""
    share = ws.config.gate.feedback_holdout
    return AGGREGATES.get(
        ("feedback", ws.store_url, model, share),
        lambda: predictions.feedback_counts(ws.store, share, model, None),
    )


def scores(confusion: list[dict[str, Any]], classes: int) -> tuple[int, float | None, float | None]:
    """(labelled, accuracy, macro F1) from confusion counts (true_index, pred_index, n)."""
    total = sum(r["n"] for r in confusion)
    if not total:
        return 0, None, None
    tp, fp, fn = [0] * classes, [0] * classes, [0] * classes
    for r in confusion:
        t, p, n = r["true_index"], r["pred_index"], r["n"]
        if not (0 <= t < classes and 0 <= p < classes):
            continue
        if t == p:
            tp[t] += n
        else:
            fp[p] += n
            fn[t] += n
    f1 = [2 * tp[k] / (2 * tp[k] + fp[k] + fn[k]) if tp[k] + fp[k] + fn[k] else 0.0 for k in range(classes)]
    return total, sum(tp) / total, sum(f1) / classes


def monitor_series(ws: Workspace, model: str | None, days: float | None) -> dict[str, Any]:
    """Accuracy and macro F1 per model version and time bucket, volumes, and the confidence histogram."""
    return AGGREGATES.get(("series", ws.store_url, model, days), lambda: _monitor_series(ws, model, days))


def _monitor_series(ws: Workspace, model: str | None, days: float | None) -> dict[str, Any]:
    store, since = ws.store, since_days(days)
    span = predictions.prediction_span(store, model, since)
    if span is None:
        return {"bucket_s": 0, "versions": {}, "histogram": {}, "span": None}
    bucket = bucket_seconds((span[1] - span[0]).total_seconds(), ws.config.monitor.buckets * 4)
    classes = {f"{v.name}@{v.version}": len(v.classes) for m in models(ws) for v in m.versions}
    versions: dict[str, dict[str, Any]] = {}
    for row in predictions.prediction_counts_by_bucket(store, bucket, model, since):
        entry = versions.setdefault(
            f"{row['model_name']}@{row['model_version']}", {"volume": [], "quality": []}
        )
        entry["volume"].append(
            (row["bucket"], row["predictions"], row["confidence_sum"] / row["predictions"])
        )
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in predictions.labelled_confusion_by_bucket(store, bucket, model, since):
        grouped.setdefault((f"{row['model_name']}@{row['model_version']}", row["bucket"]), []).append(row)
    for (ref, start), rows in sorted(grouped.items(), key=lambda kv: kv[0][1]):
        labelled, accuracy, f1 = scores(rows, classes.get(ref, 1 + max(r["true_index"] for r in rows)))
        versions.setdefault(ref, {"volume": [], "quality": []})["quality"].append(
            (start, labelled, accuracy, f1)
        )
    histogram: dict[str, list[int]] = {}
    for row in predictions.confidence_histogram(store, 10, model, since):
        counts = histogram.setdefault(f"{row['model_name']}@{row['model_version']}", [0] * 10)
        counts[row["bin"]] += row["n"]
    return {"bucket_s": bucket, "versions": versions, "histogram": histogram, "span": span}


def version_scores(ws: Workspace, model: str | None = None, days: float | None = None) -> dict[str, Any]:
    """Labelled count, accuracy and macro F1 of every model version in the window."""
    return AGGREGATES.get(
        ("scores", ws.store_url, model, days), lambda: _version_scores(ws, model, since_days(days))
    )


def _version_scores(ws: Workspace, model: str | None, since: datetime | None) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in predictions.labelled_confusion_by_bucket(ws.store, None, model, since):
        grouped.setdefault(f"{row['model_name']}@{row['model_version']}", []).append(row)
    classes = {f"{v.name}@{v.version}": len(v.classes) for m in models(ws) for v in m.versions}
    return {
        ref: scores(rows, classes.get(ref, 1 + max(max(r["true_index"], r["pred_index"]) for r in rows)))
        for ref, rows in grouped.items()
    }


def loop_overview(ws: Workspace) -> dict[str, Any]:
    """The last turn and its steps, every model's champion and challenger, alerts and feedback counts."""
    store = ws.store
    history = turns.list_turns(store)
    recent = decisions.list_decisions(store, limit=200)
    alerts = [d for d in recent if d.trigger == "alert" and d.outcome != "not_started"][:10]
    return {
        "turns": history,
        "last": history[-1] if history else None,
        "models": models(ws),
        "alerts": alerts,
        "decisions": recent[:20],
        "feedback": feedback(ws),
    }


def data_overview(ws: Workspace) -> dict[str, Any]:
    """Versions with their counts, recorded sources, and the lineage from source to model versions."""
    store = ws.store
    return {
        "versions": datasets.list_datasets(store),
        "sources": datasets.list_sources(store),
        "runs": runs.recent_runs(store, limit=200),
        "models": models(ws),
    }


def run_list(
    ws: Workspace, kind: str | None, status: str | None, model: str | None, limit: int
) -> list[runs.RunRecord]:
    found = runs.recent_runs(ws.store, limit=limit * 4 if (status or model) else limit, kind=kind)
    found = [
        r for r in found if (status is None or r.status == status) and (model is None or r.model == model)
    ]
    return found[:limit]


def run_detail(ws: Workspace, ref: str) -> dict[str, Any]:
    run = runs.get_run(ws.store, ref)
    return {
        "run": run,
        "epochs": runs.list_epochs(ws.store, run.id),
        "variants": variants.list_variants(ws.store, run_id=run.id),
    }


def serving_url(ws: Workspace, given: str | None) -> str:
    """The server's /metrics URL: the one given, else the one ``serve.host``/``serve.port`` make."""
    if given:
        return given
    host = ws.config.serve.host
    host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    return f"http://{host}:{ws.config.serve.port}/metrics"
