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
from dcloop.feedback.labels import import_labels
from dcloop.store.predictions import *  # noqa: F403  (the prediction log's public API is the package's)
from dcloop.store.predictions import __all__ as _log_api
from dcloop.store.retention import enforce_retention, prediction_windows

__all__ = [
    *_log_api,
    "Challenge",
    "Verdict",
    "challenge",
    "enforce_retention",
    "gate_challenger",
    "import_labels",
    "optimize_challenger",
    "prediction_windows",
    "register_challenger",
    "train_challenger",
]
