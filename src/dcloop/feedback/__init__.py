"""Feedback: the prediction/label store, monitoring, and folding labelled feedback back into data."""

from dcloop.feedback.store import (
    Prediction,
    add_labels,
    enforce_retention,
    forget,
    import_labels,
    labelled_predictions,
    log_predictions,
    new_prediction,
    new_predictions,
    prediction_pixels,
    prediction_stats,
)

__all__ = [
    "Prediction",
    "add_labels",
    "enforce_retention",
    "forget",
    "import_labels",
    "labelled_predictions",
    "log_predictions",
    "new_prediction",
    "new_predictions",
    "prediction_pixels",
    "prediction_stats",
]
