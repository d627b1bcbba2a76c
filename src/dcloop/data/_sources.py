"""Array sources: the built-in Animal-MNIST, .npz files and MNIST-style IDX files."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import math
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dcloop.config import MAX_IMAGE_PIXELS
from dcloop.data._convert import convert_array, to_nchw
from dcloop.data._intake import BUILTIN, SOURCES, Intake, require_classes, select_classes
from dcloop.data._unpickle import load_array
from dcloop.errors import DataError

ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
_ANIMAL_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    wanted: Sequence[str] | None,
    image_size: int,
    color: str,
    origin: str,
    test: np.ndarray | None = None,
) -> Intake:
    """Select classes, relabel them 0..K-1 and convert images: the common tail of array sources."""
    if len(x) != len(y):
        raise DataError(f"{origin}: images and labels must have the same length. Got {len(x)} and {len(y)}.")
    picked = select_classes(classes, wanted, origin)
    names = [classes[i] for i in picked]
    require_classes(names, origin)
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[picked] = np.arange(len(picked))
    keep = np.flatnonzero(remap[y] >= 0)
    images = convert_array(to_nchw(x, origin)[keep], image_size, color)
    return Intake(
        classes=names,
        x=images,
        y=remap[y[keep]],
        names=[f"{origin}#{i}" for i in keep],
        test=np.zeros(len(keep), dtype=bool) if test is None else test[keep],
    )


@SOURCES.register("animal-mnist")
def animal_mnist(
    location: Path | None,
    classes: Sequence[str] | None,
    image_size: int,
    color: str,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Intake:
    """Animal-MNIST: 10,000 28x28 grayscale animal silhouettes in 10 classes (package animal-mnist)."""
    try:
        folder = importlib.resources.files("animal_mnist") / "data" / "Animal_MNIST"
        payloads = [(folder / name).read_bytes() for name in _ANIMAL_FILES]
    except (ModuleNotFoundError, FileNotFoundError):
        raise DataError(
            "Source 'animal-mnist' needs the animal-mnist package: pip install --no-deps animal-mnist==0.4."
        ) from None
    x = load_array(payloads[0], _ANIMAL_FILES[0])
    y = load_array(payloads[1], _ANIMAL_FILES[1]).astype(np.int64)
    if x.shape[1:] != (28, 28) or y.shape != (len(x),) or y.min() < 0 or y.max() >= len(ANIMAL_CLASSES):
        raise DataError(
            f"{_ANIMAL_FILES[0]} has unexpected shape {x.shape} or labels; reinstall animal-mnist."
        )
    intake = from_arrays(x, y, ANIMAL_CLASSES, classes, image_size, color, "animal-mnist")
    intake.provenance = {
        "package": "animal-mnist==0.4",
        "files": {n: hashlib.sha256(p).hexdigest() for n, p in zip(_ANIMAL_FILES, payloads, strict=True)},
    }
    return intake


BUILTIN.add("animal-mnist")


@SOURCES.register("npz")
def npz(
    location: Path | None,
    classes: Sequence[str] | None,
    image_size: int,
    color: str,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Intake:
    """An .npz with `x` (uint8 images), `y` (integer labels) and optional `classes` (names)."""
    assert location is not None
    try:
        with np.load(location, allow_pickle=False) as archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataError(
                    f"{location} must hold arrays 'x' (images) and 'y' (labels). Missing: {', '.join(missing)}; "
                    f"found: {', '.join(archive.files) or 'nothing'}."
                )
            x, y = _member(archive, "x", location), _member(archive, "y", location)
            has_names = "classes" in archive.files
            names = [str(c) for c in _member(archive, "classes", location)] if has_names else None
    # zipfile raises NotImplementedError for an unsupported compression, RuntimeError for encryption
    except (
        OSError,
        ValueError,
        zlib.error,
        zipfile.BadZipFile,
        EOFError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise DataError(f"{location} is not a readable .npz file of numeric arrays: {exc}.") from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{location}: 'y' must be a 1-D integer array. Got {y.dtype} with shape {y.shape}.")
    if len(x) != len(y):
        raise DataError(f"{location}: 'x' and 'y' must have the same length. Got {len(x)} and {len(y)}.")
    y, names = _labels(y.astype(np.int64), names, str(location))
    return from_arrays(x, y, names, classes, image_size, color, location.name)


def _member(archive: np.lib.npyio.NpzFile, key: str, location: Path) -> np.ndarray:
    """One array of an .npz; numpy hands back a member that is no .npy file as its raw bytes."""
    value = archive[key]
    if not isinstance(value, np.ndarray):
        raise DataError(f"{location}: member {key!r} must be a .npy array. Got a file that is not .npy.")
    if value.ndim == 0:
        raise DataError(f"{location}: {key!r} must be an array with one entry per example. Got a scalar.")
    return value


def _labels(y: np.ndarray, names: list[str] | None, origin: str) -> tuple[np.ndarray, list[str]]:
    """Labels as 0..K-1 with class names: given names index directly, else the sorted label values."""
    if names is not None:
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{origin}: labels must lie in 0..{len(names) - 1} (one per class name).")
        return y, names
    values = np.unique(y)
    return np.searchsorted(values, y).astype(np.int64), [str(v) for v in values]


# -- IDX (the MNIST file format) -------------------------------------------------------------------

_IDX = re.compile(r"idx\d", re.IGNORECASE)


def is_idx(path: Path) -> bool:
    return bool(_IDX.search(path.name))


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzip'd or not): magic 0 0 0x08 ndim, big-endian int32 dims, then uint8 data."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"Cannot read IDX file {path}: {exc}.") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] == 0:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (expected magic 00 00 08 <ndim>).")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: header says {ndim} dimensions, but the file ends within them.")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    body = raw[4 + 4 * ndim :]
    size = math.prod(dims)  # Python ints: no overflow for a header of huge dimensions
    if min(dims) < 0 or len(body) != size:
        raise DataError(f"{path}: header says {dims} ({size} bytes), file holds {len(body)}.")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _idx_pairs(location: Path) -> list[tuple[Path, Path]]:
    """(images, labels) file pairs: the one given, or every pair in a folder."""
    images = [location] if location.is_file() else sorted(p for p in location.iterdir() if "idx3" in p.name)
    pairs = []
    for image_file in images:
        partner = image_file.name.replace("images", "labels").replace("idx3", "idx1")
        label_file = image_file.with_name(partner)
        if not label_file.is_file():
            raise DataError(
                f"IDX images file {image_file} needs its labels file {label_file}, which is missing."
            )
        pairs.append((image_file, label_file))
    if not pairs:
        raise DataError(f"{location} holds no IDX images files (names like train-images-idx3-ubyte[.gz]).")
    return pairs


@SOURCES.register("idx")
def idx(
    location: Path | None,
    classes: Sequence[str] | None,
    image_size: int,
    color: str,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Intake:
    """MNIST-style IDX files: an images file and its labels partner, or a folder of such pairs."""
    assert location is not None
    xs, ys, tests = [], [], []
    for image_file, label_file in _idx_pairs(location):
        x, y = read_idx(image_file), read_idx(label_file)
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"{label_file} must hold one label per image of {image_file} ({len(x)}). Got {y.shape}."
            )
        xs.append(x)
        ys.append(y.astype(np.int64))
        own_test = "t10k" in image_file.name or "test" in image_file.name
        tests.append(np.full(len(x), own_test))
    y_all, names = _labels(np.concatenate(ys), None, str(location))
    return from_arrays(
        np.concatenate(xs),
        y_all,
        names,
        classes,
        image_size,
        color,
        location.name,
        test=np.concatenate(tests),
    )
