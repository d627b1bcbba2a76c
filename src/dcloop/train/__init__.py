"""Training: model zoo, recipe parts, the training loop, checkpoints/resume, evaluation metrics.

Public API (loaded on first use, so importing the package stays light):
``train``, ``fit_model``/``FitResult``, ``load_trained``/``TrainedModel``, ``evaluate``,
``predict_arrays``, ``classification_metrics``, ``create_model``, ``list_models``, ``register_model``.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dcloop.train.loop import FitResult, fit_model
    from dcloop.train.metrics import classification_metrics, predict_arrays
    from dcloop.train.models import create_model, list_models, register_model
    from dcloop.train.run import train
    from dcloop.train.trained import TrainedModel, evaluate, load_trained

# Idle OpenMP threads sleep instead of spinning (spinning starves busy shared CPUs); only effective
# when set before torch loads, so here as well as in the CLI.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "train": "dcloop.train.run",
    "fit_model": "dcloop.train.loop",
    "FitResult": "dcloop.train.loop",
    "load_trained": "dcloop.train.trained",
    "TrainedModel": "dcloop.train.trained",
    "evaluate": "dcloop.train.trained",
    "predict_arrays": "dcloop.train.metrics",
    "classification_metrics": "dcloop.train.metrics",
    "create_model": "dcloop.train.models",
    "list_models": "dcloop.train.models",
    "register_model": "dcloop.train.models",
}

__all__ = [
    "FitResult",
    "TrainedModel",
    "classification_metrics",
    "create_model",
    "evaluate",
    "fit_model",
    "list_models",
    "load_trained",
    "predict_arrays",
    "register_model",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dcloop.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
