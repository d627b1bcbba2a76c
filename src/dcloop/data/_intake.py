"""What every source yields (an Intake) and the registry of source kinds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dcloop.errors import DataError, suggest
from dcloop.registry import Registry


@dataclass
class Intake:
    """Examples of one source, decoded and converted, before cleaning and splitting.

    ``x`` is uint8 (N, C, H, W) at the target size and colour for images, a 1-D object array of
    ``str`` for text; ``y`` int64 class indices into ``classes``, ``names`` says where each example
    came from (for the cleaning report), ``test`` marks examples of the source's own test split,
    ``quarantined`` lists (rule, path, reason) for inputs that could not be used, and ``notes`` adds
    what the source noticed to the cleaning report (text: label spelling variants).
    """

    classes: list[str]
    x: np.ndarray
    y: np.ndarray
    names: list[str]
    test: np.ndarray
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    modality: str = "image"
    notes: dict[str, Any] = field(default_factory=dict)


class SourceLoader(Protocol):
    """Reads one kind of source. ``location`` is None for built-in data sets; sources of image files
    quarantine any image over ``max_pixels`` (width x height) before decoding it."""

    def __call__(
        self,
        location: Path | None,
        classes: Sequence[str] | None,
        image_size: int,
        color: str,
        max_pixels: int = ...,
    ) -> Intake: ...


class TextSourceLoader(Protocol):
    """Reads one kind of text source: ``text_column`` and ``label_column`` name the fields of
    tabular sources (CSV, JSONL, Parquet); folder and built-in text sources ignore them."""

    def __call__(
        self, location: Path | None, classes: Sequence[str] | None, text_column: str, label_column: str
    ) -> Intake: ...


# Every source kind, image or text; TEXT says which loaders take the text call shape.
SOURCES: Registry[Callable[..., Intake]] = Registry("data source")

# Source kinds that need no path (built-in data sets).
BUILTIN: set[str] = set()

# Source kinds whose loader is a TextSourceLoader (the rest are SourceLoaders of images).
TEXT: set[str] = set()


def select_classes(known: Sequence[str], wanted: Sequence[str] | None, origin: str) -> list[int]:
    """Indices into ``known`` of the wanted classes (names or indices), in ``known`` order."""
    if not wanted:
        return list(range(len(known)))
    picked: set[int] = set()
    for token in (str(w).strip() for w in wanted):
        if token in known:
            picked.add(list(known).index(token))
        elif token.isascii() and token.isdigit() and len(token) <= 9 and int(token) < len(known):
            picked.add(int(token))
        else:
            raise DataError(
                f"Unknown class {token!r} in {origin}. Known: {', '.join(known)}.{suggest(token, known)}"
            )
    return sorted(picked)


def require_classes(classes: Sequence[str], origin: str) -> None:
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DataError(f"{origin} must hold at least 2 classes to train a classifier. Found {found}.")
