"""Feedback: the prediction/label log (kept by the store), monitoring, and folding labelled feedback
back into data."""

from dcloop.feedback._challenger import (
    Challenge,
    Verdict,
    challenge,
    gate_challenger,
    optimize_challenger,
    register_challenger,
    train_challenger,
)
from dcloop.feedback._drift import embedding_drift, ks_2samp, pixel_features, psi
from dcloop.feedback._export import export_predictions
from dcloop.feedback._labels import import_labels
from dcloop.feedback._monitor import Alert, MonitorResult, VersionHealth, monitor
from dcloop.feedback._retrain import NothingToRetrain, RetrainResult, retrain
from dcloop.store.predictions import *  # noqa: F403  (the prediction log's public API is the package's)
from dcloop.store.predictions import __all__ as _log_api
from dcloop.store.retention import enforce_retention, prediction_windows

__all__ = [
    *_log_api,
    "Alert",
    "Challenge",
    "MonitorResult",
    "NothingToRetrain",
    "RetrainResult",
    "Verdict",
    "VersionHealth",
    "challenge",
    "embedding_drift",
    "enforce_retention",
    "export_predictions",
    "gate_challenger",
    "import_labels",
    "ks_2samp",
    "monitor",
    "optimize_challenger",
    "pixel_features",
    "prediction_windows",
    "psi",
    "register_challenger",
    "retrain",
    "train_challenger",
]
