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
from dcloop.errors import ConfigError, NotFoundError
from dcloop.feedback._input_drift import DriftReport, input_drift
from dcloop.feedback.store import Prediction
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One threshold crossed: ``kind`` (low_accuracy, pixel_drift, embedding_drift) about ``subject``."""

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
    from dcloop.store._feedback import select_predictions

    cfg = ws.config.monitor
    name = resolve_model_name(ws, model)
    rows = select_predictions(ws.store, model_name=name, since=since, with_inputs=True)
    if not rows:
        when = f" since {since:%Y-%m-%d %H:%M}" if since else ""
        raise NotFoundError(f"Model {name!r} has no predictions{when}; serve it and send traffic first.")
    by_version: dict[str, list[Prediction]] = {}
    for row in rows:
        by_version.setdefault(row.model_version_id, []).append(row)
    window = (rows[0].created_at.timestamp(), rows[-1].created_at.timestamp())  # records are UTC-aware
    versions = [_health(group, window, cfg.buckets) for group in by_version.values()]
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


def resolve_model_name(ws: Workspace, model: str | None) -> str:
    """``model`` (a NAME or NAME@...), else `loop.model`/`serve.model`, else the only registered name."""
    from dcloop.store import registry as q

    names = q.model_names(ws.store)
    wanted = model or ws.config.loop.model or ws.config.serve.model
    if wanted:
        name = wanted.partition("@")[0]
        if name not in names:
            from dcloop.errors import unknown_name

            raise unknown_name("model", name, names)
        return name
    if len(names) != 1:
        known = ", ".join(names) or "none registered yet"
        raise ConfigError(f"Say which model with --model (models: {known}).")
    return names[0]


def _stored(rows: list[Prediction]) -> int:
    return sum(r.input is not None for r in rows)


def _ref(row: Prediction) -> str:
    return f"{row.model_name}@{row.model_version}"


def _health(rows: list[Prediction], window: tuple[float, float], buckets: int) -> VersionHealth:
    confidence = np.array([r.confidence for r in rows])
    counts, _ = np.histogram(confidence, bins=10, range=(0.0, 1.0))
    quality = _quality(rows)
    start, end = window
    width = (end - start) / buckets or 1.0
    times = np.array([r.created_at.timestamp() for r in rows])
    slots = np.minimum(((times - start) // width).astype(int), buckets - 1)
    rows_per_bucket = []
    for slot in sorted(set(slots.tolist())):
        members = [r for r, s in zip(rows, slots, strict=True) if s == slot]
        begin = datetime.fromtimestamp(start + slot * width, UTC)
        stop = datetime.fromtimestamp(start + (slot + 1) * width, UTC)
        rows_per_bucket.append(
            {"start": begin, "end": stop, "predictions": len(members), **_quality(members)}
        )
    return VersionHealth(
        ref=_ref(rows[0]),
        version_id=rows[0].model_version_id,
        predictions=len(rows),
        labelled=quality["labelled"],
        accuracy=quality["accuracy"],
        f1_macro=quality["f1_macro"],
        mean_confidence=float(confidence.mean()),
        confidence_counts=[int(c) for c in counts],
        buckets=rows_per_bucket,
    )


def _quality(rows: list[Prediction]) -> dict[str, Any]:
    """Accuracy and macro F1 of the labelled rows (None without labels)."""
    from dcloop.train.metrics import classification_metrics

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
            checks.append(f"pixel_drift:{d.ref}")
            worst = max(d.psi.values())
            if worst > cfg.psi_threshold:
                shifted = ", ".join(f"{k} {v:.2f}" for k, v in d.psi.items() if v > cfg.psi_threshold)
                text = f"{d.ref}: input drift, PSI above {cfg.psi_threshold} on {shifted}"
                alerts.append(Alert("pixel_drift", d.ref, worst, cfg.psi_threshold, text))
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
    from dcloop.deploy.metrics import set_alert

    firing = {a.name for a in alerts}
    for name in checks:
        set_alert(name, name in firing)
