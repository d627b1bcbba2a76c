"""Feedback: the prediction/label store, monitoring, and folding labelled feedback back into data."""

from dcloop.feedback._challenger import (
    Challenge,
    Verdict,
    challenge,
    gate_challenger,
    optimize_challenger,
    register_challenger,
    train_challenger,
)
from dcloop.feedback.store import *  # noqa: F403  (the store's public API is the package's)
from dcloop.feedback.store import __all__ as _store_api

__all__ = [
    *_store_api,
    "Challenge",
    "Verdict",
    "challenge",
    "gate_challenger",
    "optimize_challenger",
    "register_challenger",
    "train_challenger",
]
