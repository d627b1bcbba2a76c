"""`monitor`: how a served model is doing, from the predictions and labels in the feedback store.

Read top to bottom: pick the model and its predictions in the window -> per model version, accuracy
and F1 on labelled feedback over time buckets and the confidence distribution -> per version with
enough stored inputs, input drift against the version's own data set (PSI on pixel statistics, KS on
penultimate-layer embeddings) -> alerts from the `monitor` thresholds -> alert gauges and HTML report.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dcloop.config import MonitorConfig
from dcloop.deploy._registry import resolve_model_name
from dcloop.errors import NotFoundError
from dcloop.feedback._input_drift import DriftReport, input_drift
from dcloop.store.predictions import Prediction
from dcloop.store.retention import PredictionWindow
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One threshold crossed: ``kind`` (low_accuracy, pixel_drift, text_drift, embedding_drift) about
    ``subject``."""

    kind: str
    subject: str
    value: float
    threshold: float
    message: str

    @property
    def name(self) -> str:
        """The ``dcloop_alert{name=...}`` label of this alert."""
        return f"{self.kind}:{self.subject}"


@dataclass(frozen=True)
class VersionHealth:
    """Live quality of one model version in the window."""

    ref: str
    version_id: str
    predictions: int
    labelled: int
    accuracy: float | None
    f1_macro: float | None
    mean_confidence: float
    confidence_counts: list[int]  # 10 equal bins over [0, 1]
    buckets: list[dict[str, Any]]  # start, end, predictions, labelled, accuracy, f1_macro


@dataclass(frozen=True)
class MonitorResult:
    """Everything `dcloop monitor` found; ``alerts`` empty means healthy."""

    model: str
    since: datetime | None
    checked_at: datetime
    versions: list[VersionHealth]
    drift: list[DriftReport]
    alerts: list[Alert]
    report: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        drifts = [{k: v for k, v in asdict(d).items() if k != "plots"} for d in self.drift]
        return {
            "model": self.model,
            "since": self.since,
            "checked_at": self.checked_at,
            "versions": [asdict(v) for v in self.versions],
            "drift": drifts,
            "alerts": [asdict(a) | {"name": a.name} for a in self.alerts],
            "report": str(self.report) if self.report else None,
        }


def monitor(
    ws: Workspace,
    model: str | None = None,
    since: datetime | None = None,
    *,
    report: Path | None = None,
    export_alerts: bool = True,
) -> MonitorResult:
    """Check the live accuracy and input drift of ``model`` (default: the only registered model).

    ``report`` writes an HTML report there; ``export_alerts`` sets the ``dcloop_alert`` gauges of
    the servers in this process (1 firing, 0 clear) for every check that ran.
    """
    from dcloop.store.predictions import list_predictions
    from dcloop.store.retention import prediction_windows

    cfg = ws.config.monitor
    name = resolve_model_name(ws, model)
    rows = list_predictions(ws.store, model_name=name, since=since, with_inputs=True)
    folded = prediction_windows(ws.store, model_name=name, since=since)
    if not rows and not folded:
        when = f" since {since:%Y-%m-%d %H:%M}" if since else ""
        raise NotFoundError(f"Model {name!r} has no predictions{when}; serve it and send traffic first.")
    by_version: dict[str, list[Prediction]] = {}
    for row in rows:
        by_version.setdefault(row.model_version_id, []).append(row)
    folded_by_version: dict[str, list[PredictionWindow]] = {}
    for w in folded:
        folded_by_version.setdefault(w.model_version_id, []).append(w)
    times = [r.created_at.timestamp() for r in rows[:1] + rows[-1:]]  # records are UTC-aware
    times += [t.timestamp() for w in folded for t in (w.first_at, w.last_at)]
    window = (min(times), max(times))
    versions = [
        _health(by_version.get(v, []), folded_by_version.get(v, []), window, cfg.buckets)
        for v in dict.fromkeys([*by_version, *folded_by_version])
    ]
    drifts = [
        input_drift(ws, group, cfg) for group in by_version.values() if _stored(group) >= cfg.min_samples
    ]
    alerts, checks = _alerts(versions, drifts, cfg)
    if export_alerts:
        _export(checks, alerts)
    result = MonitorResult(name, since, datetime.now(UTC), versions, drifts, alerts)
    if report is not None:
        from dcloop.feedback._monitor_report import write_monitor_report

        result = replace(result, report=write_monitor_report(report, result, cfg))
    return result


def _stored(rows: list[Prediction]) -> int:
    return sum(r.input is not None for r in rows)


def _health(
    rows: list[Prediction], folded: list[PredictionWindow], window: tuple[float, float], buckets: int
) -> VersionHealth:
    """Health of one version from its kept rows and the windows retention folded its older rows into
    (each counted in the bucket of its first prediction)."""
    confidence = np.array([r.confidence for r in rows])
    counts, _ = np.histogram(confidence, bins=10, range=(0.0, 1.0))
    for w in folded:
        counts += np.asarray(w.confidence_counts)
    total = len(rows) + sum(w.predictions for w in folded)
    quality = _quality(rows)
    start, end = window
    width = (end - start) / buckets or 1.0

    def slot(at: datetime) -> int:
        return min(int((at.timestamp() - start) // width), buckets - 1)

    members: dict[int, list[Prediction]] = {}
    for r in rows:
        members.setdefault(slot(r.created_at), []).append(r)
    extra: dict[int, int] = {}
    for w in folded:
        extra[slot(w.first_at)] = extra.get(slot(w.first_at), 0) + w.predictions
    rows_per_bucket = []
    for index in sorted(members.keys() | extra.keys()):
        kept = members.get(index, [])
        begin = datetime.fromtimestamp(start + index * width, UTC)
        stop = datetime.fromtimestamp(start + (index + 1) * width, UTC)
        n = len(kept) + extra.get(index, 0)
        rows_per_bucket.append({"start": begin, "end": stop, "predictions": n, **_quality(kept)})
    first = rows[0] if rows else folded[0]
    return VersionHealth(
        ref=f"{first.model_name}@{first.model_version}",
        version_id=first.model_version_id,
        predictions=total,
        labelled=quality["labelled"],
        accuracy=quality["accuracy"],
        f1_macro=quality["f1_macro"],
        mean_confidence=float(confidence.sum() + sum(w.confidence_sum for w in folded)) / total,
        confidence_counts=[int(c) for c in counts],
        buckets=rows_per_bucket,
    )


def _quality(rows: list[Prediction]) -> dict[str, Any]:
    """Accuracy and macro F1 of the labelled rows (None without labels)."""
    from dcloop.train import classification_metrics

    labelled = [r for r in rows if r.label_index is not None]
    if not labelled:
        return {"labelled": 0, "accuracy": None, "f1_macro": None}
    truth = np.array([r.label_index for r in labelled])
    predicted = np.array([r.pred_index for r in labelled])
    metrics = classification_metrics(truth, predicted, None, labelled[0].classes)
    return {"labelled": len(labelled), "accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"]}


def _alerts(
    versions: list[VersionHealth], drifts: list[DriftReport], cfg: MonitorConfig
) -> tuple[list[Alert], list[str]]:
    """Alerts that fire, and the names of every check that ran (to clear those that do not)."""
    alerts: list[Alert] = []
    checks: list[str] = []
    for v in versions:
        if v.accuracy is None or v.labelled < cfg.min_labels:
            continue
        checks.append(f"low_accuracy:{v.ref}")
        if v.accuracy < cfg.min_accuracy:
            text = f"{v.ref}: accuracy {v.accuracy:.3f} on {v.labelled} labelled predictions < {cfg.min_accuracy}"
            alerts.append(Alert("low_accuracy", v.ref, v.accuracy, cfg.min_accuracy, text))
    for d in drifts:
        if d.psi:
            checks.append(f"{d.alert}:{d.ref}")
            worst = max(d.psi.values())
            if worst > cfg.psi_threshold:
                shifted = ", ".join(f"{k} {v:.2f}" for k, v in d.psi.items() if v > cfg.psi_threshold)
                text = f"{d.ref}: input drift, PSI above {cfg.psi_threshold} on {shifted}"
                alerts.append(Alert(d.alert, d.ref, worst, cfg.psi_threshold, text))
        if d.embedding is not None:
            checks.append(f"embedding_drift:{d.ref}")
            p = d.embedding["ks_pvalue"]
            if p < cfg.ks_pvalue:
                text = (
                    f"{d.ref}: embedding drift, KS p-value {p:.2g} < {cfg.ks_pvalue} "
                    f"(D = {d.embedding['ks_statistic']:.3f} on {d.current_n} inputs)"
                )
                alerts.append(Alert("embedding_drift", d.ref, p, cfg.ks_pvalue, text))
    return alerts, checks


def _export(checks: list[str], alerts: list[Alert]) -> None:
    from dcloop.deploy import set_alert

    firing = {a.name for a in alerts}
    for name in checks:
        set_alert(name, name in firing)
