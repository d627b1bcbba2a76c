"""One small exception tree. The CLI prints ``str(error)`` as one line and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DcloopError(Exception):
    """Base of every error dcloop raises on purpose; its message is one user-facing line."""

    exit_code = 1


class ConfigError(DcloopError):
    """A configuration file, flag or field is wrong."""

    exit_code = 2


class DataError(DcloopError):
    """Input data cannot be read or used."""


class NotFoundError(DcloopError):
    """A named thing (run, data set version, model, study) does not exist."""


class PredictionNotFoundError(NotFoundError, DataError):
    """A label names a prediction id that is not stored (never answered, or dropped by retention).

    Also a DataError: labels are input data, and a batch of them is refused whole.
    """


class StoreError(DcloopError):
    """The workspace store cannot be opened or written."""


class TrainError(DcloopError):
    """Training cannot start or continue."""


class ClusterError(DcloopError):
    """The Ray cluster cannot be reached or cannot run the job as asked."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> NotFoundError:
    """The uniform error for a name missing from a registry."""
    choices = sorted(choices)
    return NotFoundError(f"Unknown {kind} {name!r}. Known: {', '.join(choices)}.{suggest(name, choices)}")
