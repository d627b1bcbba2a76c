"""Classification metrics (torchmetrics) and batched prediction on uint8 images.

``classification_metrics`` is the one definition of accuracy/precision/recall/F1/confusion/ROC-AUC
that every stage (training, optimization gates, monitoring) reports, so their numbers compare. The
arithmetic is torchmetrics' functional API (exact counts in int64, ROC-AUC without binning); this
module only shapes the result and fixes the conventions: a class without support or predictions
scores 0, and ROC-AUC is None when one class is absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    target, preds = _tensor(y_true), _tensor(y_pred)
    return multiclass_confusion_matrix(preds, target, num_classes, validate_args=False).numpy()


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of binary labels (1 = positive), ties counted half; NaN with one class."""
    import torch
    from torchmetrics.functional.classification import binary_auroc

    target = torch.as_tensor(np.asarray(y_true).astype(np.int64))
    if target.numel() == 0 or int(target.sum()) in (0, target.numel()):
        return float("nan")  # undefined: torchmetrics would warn and return 0
    # torchmetrics squashes scores outside [0, 1] with a sigmoid: monotone, so the AUC is unchanged
    preds = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    return float(binary_auroc(preds, target, thresholds=None, validate_args=False))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class and macro precision/recall/F1, the confusion matrix and, for two classes,
    ROC-AUC of the second class's probability. Classes without support or predictions score 0."""
    from torchmetrics.functional.classification import (
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    target, preds, k = _tensor(y_true), _tensor(y_pred), len(classes)
    matrix = confusion_matrix(y_true, y_pred, k)
    precision = recall = f1 = np.zeros(k)  # nothing to score: torchmetrics refuses empty input
    if len(target):
        per_class: dict[str, Any] = {"average": None, "validate_args": False, "zero_division": 0}
        precision = multiclass_precision(preds, target, k, **per_class).double().numpy()
        recall = multiclass_recall(preds, target, k, **per_class).double().numpy()
        f1 = multiclass_f1_score(preds, target, k, **per_class).double().numpy()
    result: dict[str, Any] = {
        "n": len(target),
        "accuracy": float(np.trace(matrix) / max(len(target), 1)),
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
    if k == 2 and probs is not None:
        auc = roc_auc(np.asarray(y_true) == 1, np.asarray(probs)[:, 1])
        result["roc_auc"] = None if np.isnan(auc) else auc  # undefined when one class is absent
    return result


def _tensor(labels: np.ndarray) -> Any:
    import torch

    return torch.as_tensor(np.asarray(labels, dtype=np.int64))


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
