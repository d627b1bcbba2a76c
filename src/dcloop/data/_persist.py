"""Data set versions at rest: ``datasets/<id>/`` with x.npy (images) or text.bin + offsets.npy (text:
the UTF-8 texts concatenated and where each starts), y.npy, splits.npz and manifest.json.

A version's id is the sha256 of its content (images or texts, labels, classes, split indices), so
preparing the same input with the same config twice yields the same id. A version is written into a
temporary folder beside its final place and renamed into it, so a killed prepare never leaves half a
version.
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
TEXT_FILES = {"text": "text.bin", "offsets": "offsets.npy", "y": "y.npy", "splits": "splits.npz"}
TEXT_FILES["manifest"] = FILES["manifest"]


def pack_texts(texts: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The texts' UTF-8 bytes concatenated, and int64 offsets (N+1): text i is ``blob[o[i]:o[i+1]]``."""
    encoded = [str(t).encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in encoded], dtype=np.int64)
    return b"".join(encoded), offsets


def unpack_texts(blob: bytes, offsets: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack_texts`: a 1-D object array of ``str``."""
    texts = np.empty(len(offsets) - 1, dtype=object)
    bounds = offsets.tolist()
    for i in range(len(texts)):
        texts[i] = blob[bounds[i] : bounds[i + 1]].decode("utf-8")
    return texts


def content_id(x: np.ndarray, y: np.ndarray, classes: list[str], splits: dict[str, np.ndarray]) -> str:
    """sha256 over shapes, pixels (or texts' bytes and offsets), labels, class names and split indices."""
    h = hashlib.sha256()
    if x.dtype == object:  # text; the header differs from any image header, so ids never collide
        blob, offsets = pack_texts(x)
        h.update(json.dumps({"modality": "text", "n": len(x), "classes": classes}).encode())
        h.update(blob)
        h.update(np.ascontiguousarray(offsets, dtype="<i8").data)
    else:
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
    """Write a version (unless its content already exists) and return its record (not yet stored).

    ``x`` is uint8 images (N, C, H, W) or a 1-D object array of texts; the record's modality says which.
    """
    modality = "text" if x.dtype == object else "image"
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
        modality=modality,
    )
    if (final / FILES["manifest"]).is_file():
        return record
    try:
        with replacing_dir(final) as tmp:
            if modality == "text":
                blob, offsets = pack_texts(x)
                (tmp / TEXT_FILES["text"]).write_bytes(blob)
                np.save(tmp / TEXT_FILES["offsets"], offsets)
            else:
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
    text = record.modality == "text"
    files = TEXT_FILES if text else FILES
    over = "classes, texts' UTF-8 bytes and offsets" if text else "shape, classes, x"
    manifest = {
        "id": record.id,
        "name": record.name,
        "created_at": record.created_at.isoformat(),
        "modality": record.modality,
        "classes": record.classes,
        "num_examples": n,
        "shape": record.shape,
        "dtype": "utf-8" if text else "uint8",
        "layout": "text.bin[offsets[i]:offsets[i+1]]" if text else "NCHW",
        "counts": record.counts,
        "splits": FILES["splits"],
        "files": {k: v for k, v in files.items() if k != "manifest"},
        "hash": {"algorithm": "sha256", "over": f"{over}, y, split indices", "value": record.id},
        "source": record.source,
        "cleaning": record.cleaning,
        "parent_id": record.parent_id,
    }
    return json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"


def read_version(folder: Path, record: DatasetRecord) -> PreparedDataset:
    """Load a version; images are memory-mapped read-only, texts decoded into an object array of str.
    Nothing in it is executed (no pickles)."""
    text = record.modality == "text"
    try:
        x = _read_texts(folder) if text else np.load(folder / FILES["x"], mmap_mode="r", allow_pickle=False)
        y = np.load(folder / FILES["y"], allow_pickle=False)
        with np.load(folder / FILES["splits"], allow_pickle=False) as archive:
            splits = {name: archive[name] for name in SPLITS}
    except (OSError, ValueError, KeyError) as exc:  # UnicodeDecodeError is a ValueError
        raise DataError(
            f"Data set version {record.id[:12]} at {folder} is missing or damaged: {exc}."
        ) from None
    if x.ndim != (1 if text else 4) or len(x) != len(y):
        raise DataError(f"Data set version {record.id[:12]} at {folder} has inconsistent arrays.")
    return PreparedDataset(record=record, x=x, y=y, splits=splits)


def _read_texts(folder: Path) -> np.ndarray:
    blob = (folder / TEXT_FILES["text"]).read_bytes()
    offsets = np.load(folder / TEXT_FILES["offsets"], allow_pickle=False)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(blob):
        raise ValueError(f"{TEXT_FILES['offsets']} does not match {TEXT_FILES['text']}")
    if np.any(np.diff(offsets) < 0):
        raise ValueError(f"{TEXT_FILES['offsets']} is not ascending")
    return unpack_texts(blob, offsets)
