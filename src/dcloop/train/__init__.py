"""Training: model zoo, recipe parts, the training loop, checkpoints/resume, evaluation metrics.

Public API (loaded on first use, so importing the package stays light):
``train``, ``fit_model``/``FitResult``, ``load_trained``/``TrainedModel``, ``evaluate``,
``predict_arrays``, ``predict_texts``, ``classification_metrics``, ``create_model``, ``list_models``,
``register_model``, ``text_tokenizer``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dcloop._lazy import lazy_attribute

if TYPE_CHECKING:
    from dcloop.train._loop import FitResult, fit_model
    from dcloop.train._metrics import classification_metrics, predict_arrays
    from dcloop.train._models import create_model, list_models, register_model
    from dcloop.train._predict_text import predict_texts
    from dcloop.train._run import train
    from dcloop.train._text_models import text_tokenizer
    from dcloop.train._trained import TrainedModel, evaluate, load_trained

_EXPORTS = {
    "train": "dcloop.train._run",
    "fit_model": "dcloop.train._loop",
    "FitResult": "dcloop.train._loop",
    "load_trained": "dcloop.train._trained",
    "TrainedModel": "dcloop.train._trained",
    "evaluate": "dcloop.train._trained",
    "predict_arrays": "dcloop.train._metrics",
    "predict_texts": "dcloop.train._predict_text",
    "text_tokenizer": "dcloop.train._text_models",
    "classification_metrics": "dcloop.train._metrics",
    "create_model": "dcloop.train._models",
    "list_models": "dcloop.train._models",
    "register_model": "dcloop.train._models",
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
    "predict_texts",
    "register_model",
    "text_tokenizer",
    "train",
]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _EXPORTS)
