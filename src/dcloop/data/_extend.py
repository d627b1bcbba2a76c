"""Extend a version with new labelled examples (feedback folded back into data).

The new version keeps every example of its base in place, with the base's test split frozen (same
images, same indices) so metrics of the old and new version stay comparable; new examples pass the
same cleaning rules and are split into train and val only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from dcloop.data._clean import clean, digest, merge_reports
from dcloop.data._convert import convert_array, to_nchw
from dcloop.data._persist import write_version
from dcloop.data._prepare import load_dataset
from dcloop.data._split import stratified_split
from dcloop.data._text_clean import clean_texts, merge_text_reports, text_digest
from dcloop.errors import DataError
from dcloop.store import DatasetRecord
from dcloop.store import datasets as store_datasets
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)


def extend_dataset(
    workspace: Workspace,
    base: str,
    images: np.ndarray | Sequence[str],
    labels: np.ndarray,
    origin: dict[str, Any],
) -> DatasetRecord:
    """A new version: ``base`` (id, prefix or name) plus ``images`` with class-index ``labels``.

    ``images`` are uint8 (N, H, W) or (N, C, H, W) at the base version's image size, or, for a text
    version, N strings; ``origin`` says where they came from (it is kept in the new version's
    provenance). When no new example survives cleaning, the content is the base's, so the base
    version itself is returned.
    """
    cfg = workspace.config.data
    old = load_dataset(workspace, base)
    if old.modality == "text":
        x_new, y_new = _validate_texts(images, labels, old.num_classes)
        names = [f"feedback#{i}" for i in range(len(x_new))]
        known = {text_digest(text): int(label) for text, label in zip(old.x, old.y, strict=True)}
        keep, report = clean_texts(
            x_new, y_new, names, max_chars=cfg.max_chars, dedupe=cfg.dedupe, known=known
        )
        merged = merge_text_reports(old.record.cleaning, report)
    else:
        x_new, y_new = _validate(images, labels, old.image_shape, old.num_classes)
        names = [f"feedback#{i}" for i in range(len(x_new))]
        known = {digest(image): int(label) for image, label in zip(old.x, old.y, strict=True)}
        keep, report = clean(x_new, y_new, names, drop_blank=cfg.drop_blank, dedupe=cfg.dedupe, known=known)
        merged = merge_reports(old.record.cleaning, report)
    x_new, y_new = x_new[keep], y_new[keep]
    added = stratified_split(y_new, cfg.val_fraction, 0.0, cfg.seed)
    offset = len(old.y)
    splits = {name: np.concatenate([old.splits[name], added[name] + offset]) for name in old.splits}
    cleaning = merged | {"added": report}
    provenance = {
        "kind": "feedback",
        "base": old.id,
        "origin": json.loads(json.dumps(origin, default=str)),  # plain JSON: datetimes become text
        "offered": len(names),
        "added": len(y_new),
    }
    record = write_version(
        workspace.datasets_dir,
        old.record.name,
        np.concatenate([np.asarray(old.x), x_new]),
        np.concatenate([old.y, y_new]),
        old.classes,
        splits,
        provenance,
        cleaning,
        parent_id=old.id,
    )
    log.info(
        "extended %s with %d of %d examples -> %s",
        old.record.short_id,
        len(y_new),
        len(names),
        record.short_id,
    )
    return store_datasets.add_dataset(workspace.store, record)


def _validate_texts(texts: object, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    items = list(texts) if isinstance(texts, (list, tuple, np.ndarray)) else None
    if items is None or not all(isinstance(t, str) for t in items):
        raise DataError("extend_dataset texts must be a list or 1-D array of strings for a text version.")
    x = np.empty(len(items), dtype=object)
    x[:] = items
    return x, _validate_labels(labels, len(x), num_classes)


def _validate(
    images: np.ndarray | Sequence[str], labels: np.ndarray, shape: tuple[int, int, int], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    x = to_nchw(images, "extend_dataset images")
    channels, height, width = shape
    if x.shape[2:] != (height, width):
        raise DataError(
            f"extend_dataset images must be {height}x{width} like the base version. Got {x.shape[2:]}."
        )
    x = convert_array(x, height, "grayscale" if channels == 1 else "rgb")
    return x, _validate_labels(labels, len(x), num_classes)


def _validate_labels(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"extend_dataset labels must be {n} integer class indices (one per example). "
            f"Got {labels.dtype} with shape {labels.shape}."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"extend_dataset labels must lie in 0..{num_classes - 1}. Got {labels.min()}..{labels.max()}."
        )
    return labels.astype(np.int64)
