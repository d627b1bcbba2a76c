"""Training: model zoo, recipe parts, the training loop, checkpoints/resume, evaluation metrics.

Public API (loaded on first use, so importing the package stays light):
``train``, ``fit_model``/``FitResult``, ``load_trained``/``TrainedModel``, ``evaluate``,
``predict_arrays``, ``classification_metrics``, ``create_model``, ``list_models``, ``register_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dcloop._lazy import lazy_attribute

if TYPE_CHECKING:
    from dcloop.train.loop import FitResult, fit_model
    from dcloop.train.metrics import classification_metrics, predict_arrays
    from dcloop.train.models import create_model, list_models, register_model
    from dcloop.train.run import train
    from dcloop.train.trained import TrainedModel, evaluate, load_trained

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
    return lazy_attribute(__name__, name, _EXPORTS)
