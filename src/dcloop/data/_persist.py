"""Data set versions at rest: ``datasets/<id>/`` with x.npy, y.npy, splits.npz and manifest.json.

A version's id is the sha256 of its content (images, labels, classes, split indices), so preparing
the same input with the same config twice yields the same id. A version is written into a temporary
folder beside its final place and renamed into it, so a killed prepare never leaves half a version.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dcloop.atomic import replacing_dir
from dcloop.data._version import SPLITS, PreparedDataset
from dcloop.errors import DataError
from dcloop.store import DatasetRecord

FILES = {"x": "x.npy", "y": "y.npy", "splits": "splits.npz", "manifest": "manifest.json"}


def content_id(x: np.ndarray, y: np.ndarray, classes: list[str], splits: dict[str, np.ndarray]) -> str:
    """sha256 over shapes, pixels, labels, class names and split indices."""
    h = hashlib.sha256()
    h.update(json.dumps({"shape": list(x.shape), "classes": classes}).encode())
    # Arrays go in as buffers: .tobytes() would copy the whole image array just to hash it.
    h.update(np.ascontiguousarray(x, dtype=np.uint8).data)
    h.update(np.ascontiguousarray(y, dtype="<i8").data)
    for name in SPLITS:
        h.update(name.encode())
        h.update(np.ascontiguousarray(splits[name], dtype="<i8").data)
    return h.hexdigest()


def counts(y: np.ndarray, classes: list[str], splits: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """{split: {class: n}}."""
    return {
        name: {c: int(n) for c, n in zip(classes, np.bincount(y[idx], minlength=len(classes)), strict=True)}
        for name, idx in splits.items()
    }


def write_version(
    datasets_dir: Path,
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    splits: dict[str, np.ndarray],
    source: dict[str, Any],
    cleaning: dict[str, Any],
    parent_id: str | None = None,
) -> DatasetRecord:
    """Write a version (unless its content already exists) and return its record (not yet stored)."""
    version_id = content_id(x, y, classes, splits)
    final = datasets_dir / version_id
    record = DatasetRecord(
        id=version_id,
        name=name,
        created_at=datetime.now(UTC),
        path=str(final),
        classes=list(classes),
        counts=counts(y, classes, splits),
        shape=[int(d) for d in x.shape[1:]],
        source=source,
        cleaning=cleaning,
        parent_id=parent_id,
    )
    if (final / FILES["manifest"]).is_file():
        return record
    try:
        with replacing_dir(final) as tmp:
            np.save(tmp / FILES["x"], np.ascontiguousarray(x, dtype=np.uint8))
            np.save(tmp / FILES["y"], np.ascontiguousarray(y, dtype=np.int64))
            np.savez(tmp / FILES["splits"], train=splits["train"], val=splits["val"], test=splits["test"])
            (tmp / FILES["manifest"]).write_text(_manifest(record, len(x)), encoding="utf-8")
    except OSError as exc:
        if (final / FILES["manifest"]).is_file():  # a concurrent writer of the same content got there first
            return record
        raise DataError(f"Cannot write data set version to {final}: {exc.strerror or exc}.") from None
    return record


def _manifest(record: DatasetRecord, n: int) -> str:
    manifest = {
        "id": record.id,
        "name": record.name,
        "created_at": record.created_at.isoformat(),
        "classes": record.classes,
        "num_examples": n,
        "shape": record.shape,
        "dtype": "uint8",
        "layout": "NCHW",
        "counts": record.counts,
        "splits": FILES["splits"],
        "files": {k: v for k, v in FILES.items() if k != "manifest"},
        "hash": {"algorithm": "sha256", "over": "shape, classes, x, y, split indices", "value": record.id},
        "source": record.source,
        "cleaning": record.cleaning,
        "parent_id": record.parent_id,
    }
    return json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"


def read_version(folder: Path, record: DatasetRecord) -> PreparedDataset:
    """Load a version; ``x`` is memory-mapped read-only. Nothing in it is executed (no pickles)."""
    try:
        x = np.load(folder / FILES["x"], mmap_mode="r", allow_pickle=False)
        y = np.load(folder / FILES["y"], allow_pickle=False)
        with np.load(folder / FILES["splits"], allow_pickle=False) as archive:
            splits = {name: archive[name] for name in SPLITS}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"Data set version {record.id[:12]} at {folder} is missing or damaged: {exc}."
        ) from None
    if x.ndim != 4 or len(x) != len(y):
        raise DataError(f"Data set version {record.id[:12]} at {folder} has inconsistent arrays.")
    return PreparedDataset(record=record, x=x, y=y, splits=splits)
