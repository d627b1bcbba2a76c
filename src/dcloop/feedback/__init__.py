"""Feedback: the prediction/label store, monitoring, and folding labelled feedback back into data."""

from dcloop.feedback.store import *  # noqa: F403  (the store's public API is the package's)
from dcloop.feedback.store import __all__ as __all__
