"""Classification metrics (numpy, exact) and batched prediction on uint8 images.

``classification_metrics`` is the one definition of accuracy/precision/recall/F1/confusion/ROC-AUC
that every stage (training, optimization gates, monitoring) reports, so their numbers compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of binary labels (1 = positive) via the rank statistic, ties averaged."""
    y_true = np.asarray(y_true).astype(bool)
    positives, negatives = int(y_true.sum()), int((~y_true).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # average ranks over tied scores
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0
    return float((ranks[y_true].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class and macro precision/recall/F1, the confusion matrix and, for two classes,
    ROC-AUC of the second class's probability. Classes without support or predictions score 0."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    true_pos = np.diag(matrix).astype(np.float64)
    precision = _safe_div(true_pos, matrix.sum(axis=0).astype(np.float64))
    recall = _safe_div(true_pos, matrix.sum(axis=1).astype(np.float64))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    result: dict[str, Any] = {
        "n": len(y_true),
        "accuracy": float(true_pos.sum() / max(len(y_true), 1)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(matrix[i].sum()),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": matrix.tolist(),
        "classes": list(classes),
    }
    if len(classes) == 2 and probs is not None:
        auc = roc_auc(y_true == 1, np.asarray(probs)[:, 1])
        result["roc_auc"] = None if np.isnan(auc) else auc  # undefined when one class is absent
    return result


def predict_arrays(model: Any, x_uint8: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and class probabilities of uint8 images (N, C, H, W), in eval mode on the
    model's device. A single-logit model is read as P(class 1) = sigmoid(logit)."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(x_uint8), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x_uint8[start : start + batch_size]))
            logits = model(batch.to(device).float().div_(255.0)).float()
            chunks.append(probabilities(logits).cpu().numpy())
    model.train(was_training)
    probs = np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.float32)
    return probs.argmax(axis=1).astype(np.int64), probs


def probabilities(logits: Any) -> Any:
    """Class probabilities of a float logits tensor (N, K); one logit means P(class 1) = sigmoid."""
    import torch

    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits)
        return torch.cat([1.0 - positive, positive], dim=1)
    return logits.softmax(dim=1)
