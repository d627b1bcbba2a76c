"""The promotion gate: a challenger replaces the champion only when it is measurably better.

It must beat the champion by ``gate.min_improvement`` accuracy points on the frozen test split of the
champion's data set version, and on recent labelled feedback once there are ``gate.min_feedback_labels``
labels with stored inputs (the ``gate.feedback_holdout`` share that retraining never trains on); and
no class's recall on the test split may drop by more than ``gate.max_class_regression`` points (a
significant drop only, when ``gate.class_regression_p`` is below 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from dcloop.deploy._registry import get_model_version
from dcloop.deploy._runtime import OnnxModel, load_model
from dcloop.store.predictions import labelled_examples
from dcloop.store.registry import ModelVersion
from dcloop.workspace import Workspace


@dataclass(frozen=True)
class GateDecision:
    """``passed``; ``reasons`` it failed (empty when it passed); the numbers compared, per evidence."""

    passed: bool
    reasons: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.passed:
            return "; ".join(self.reasons)
        parts = [
            f"{k}: {v['challenger']:.2f}% vs {v['champion']:.2f}%"
            for k, v in self.metrics.items()
            if "champion" in v
        ]
        return "gate passed (" + "; ".join(parts) + ")"


EVIDENCE_COLUMNS = ["evidence", "images", "challenger %", "champion %"]


def evidence_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """One row per evidence the gate compared accuracy on (``GateDecision.metrics``, or its JSON)."""
    return [
        [name, v.get("n"), v.get("challenger"), v.get("champion")]
        for name, v in metrics.items()
        if isinstance(v, dict) and "challenger" in v
    ]


def scores(classes: list[str], predicted: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy and per-class recall (percent) of predicted class indices against labels ``y``."""
    recall = {}
    for index, name in enumerate(classes):
        mask = y == index
        if mask.any():
            recall[name] = float((predicted[mask] == index).mean() * 100)
    return {
        "n": len(y),
        "accuracy": float((predicted == y).mean() * 100) if len(y) else 0.0,
        "recall": recall,
    }


def compare(
    challenger: OnnxModel,
    champion: OnnxModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    evidence: str,
    min_improvement: float,
    max_class_regression: float | None,
    class_regression_p: float = 1.0,
) -> tuple[list[str], dict[str, Any]]:
    """Failure reasons and the numbers of one comparison (``max_class_regression`` None: skip classes).

    A class whose recall drops by more than ``max_class_regression`` points fails it unless
    ``class_regression_p`` < 1 and the drop is not significant at that level (see ``worse_p_value``).
    """
    new_pred, old_pred = challenger.predict_classes(x), champion.predict_classes(x)
    new, old = scores(challenger.classes, new_pred, y), scores(champion.classes, old_pred, y)
    gain = new["accuracy"] - old["accuracy"]
    reasons = []
    if gain < min_improvement:
        reasons.append(
            f"{evidence} accuracy {new['accuracy']:.2f}% vs champion {old['accuracy']:.2f}% "
            f"({gain:+.2f} points, needs {min_improvement:+.2f})"
        )
    if max_class_regression is not None:
        for name, before in old["recall"].items():
            drop = before - new["recall"].get(name, 0.0)
            if drop <= max_class_regression:
                continue
            mask = y == champion.classes.index(name)
            p = worse_p_value(old_pred[mask] == y[mask], new_pred[mask] == y[mask])
            if class_regression_p < 1.0 and p >= class_regression_p:
                continue  # a drop this size is within the noise of this many test images
            significance = f", p = {p:.3g}" if class_regression_p < 1.0 else ""
            reasons.append(
                f"{evidence} recall of class {name!r} drops {drop:.2f} points (at most "
                f"{max_class_regression:.2f}{significance})"
            )
    numbers = {"n": new["n"], "challenger": new["accuracy"], "champion": old["accuracy"], "gain": gain}
    numbers["recall"] = {"challenger": new["recall"], "champion": old["recall"]}
    return reasons, numbers


def worse_p_value(champion_right: np.ndarray, challenger_right: np.ndarray) -> float:
    """One-sided exact McNemar test on paired outcomes: the chance of the challenger losing at least as
    many of these images as it does (net of those it wins) if both models were equally good on them."""
    from math import comb

    lost = int((champion_right & ~challenger_right).sum())
    discordant = lost + int((~champion_right & challenger_right).sum())
    if discordant == 0:
        return 1.0
    return sum(comb(discordant, k) for k in range(lost, discordant + 1)) / 2**discordant


def evaluate_gate(
    ws: Workspace, name: str, challenger: ModelVersion | str, champion: ModelVersion | str
) -> GateDecision:
    """Compare two versions of ``name`` with the thresholds of the workspace's ``gate`` config."""
    cfg = ws.config.gate
    new = (
        challenger if isinstance(challenger, ModelVersion) else get_model_version(ws, _ref(name, challenger))
    )
    old = champion if isinstance(champion, ModelVersion) else get_model_version(ws, _ref(name, champion))
    if new.classes != old.classes or new.input_shape != old.input_shape:
        reason = (
            f"{new.ref} answers classes {new.classes} on {new.input_shape} but champion {old.ref} "
            f"answers {old.classes} on {old.input_shape}"
        )
        return GateDecision(False, [reason])
    if old.dataset_id is None:
        return GateDecision(
            False, [f"champion {old.ref} records no data set version, so there is no test split"]
        )
    from dcloop.data import load_dataset

    dataset = load_dataset(ws, old.dataset_id)
    x, y = dataset.arrays("test")
    new_model, old_model = load_model(new), load_model(old)
    reasons, test = compare(
        new_model,
        old_model,
        np.asarray(x),
        np.asarray(y),
        evidence="test split",
        min_improvement=cfg.min_improvement,
        max_class_regression=cfg.max_class_regression,
        class_regression_p=cfg.class_regression_p,
    )
    metrics: dict[str, Any] = {"test": test}
    fx, fy = _recent_feedback(ws, name, old, cfg.feedback_days, cfg.feedback_holdout)
    if len(fy) >= cfg.min_feedback_labels:
        more, metrics["feedback"] = compare(
            new_model,
            old_model,
            fx,
            fy,
            evidence="feedback",
            min_improvement=cfg.min_improvement,
            max_class_regression=None,
        )
        reasons += more
    else:
        metrics["feedback"] = {"n": len(fy), "skipped": f"fewer than {cfg.min_feedback_labels} labels"}
    return GateDecision(not reasons, reasons, metrics)


def _ref(name: str, ref: str) -> str:
    return ref if "@" in ref else f"{name}@{ref}"


def _recent_feedback(
    ws: Workspace, name: str, champion: ModelVersion, days: float, holdout: float
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled predictions of ``name`` from the last ``days`` whose inputs are still stored: the
    held-out share retraining never sees (all of them when ``gate.feedback_holdout`` is 0)."""
    since = datetime.now(UTC) - timedelta(days=days)
    shape = tuple(champion.input_shape)
    if holdout == 0:
        return labelled_examples(ws.store, name, shape, since)
    return labelled_examples(ws.store, name, shape, since, holdout=holdout, part="holdout")
