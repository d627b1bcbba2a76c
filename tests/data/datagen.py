"""Small data sets the data tests generate: image folders (Pillow), IDX files and arrays."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def random_images(n: int, size: int = 8, seed: int = 0, channels: int = 1) -> np.ndarray:
    """``n`` distinct, non-blank uint8 images (N, H, W) or (N, H, W, C)."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def write_image_folder(
    root: Path, per_class: dict[str, int], size: int = 8, seed: int = 0, fmt: str = "png"
) -> Path:
    """``root/<class>/<i>.<fmt>`` with distinct random grayscale images."""
    from PIL import Image

    for k, (name, n) in enumerate(per_class.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(random_images(n, size, seed=seed * 100 + k)):
            Image.fromarray(pixels).save(folder / f"{i}.{fmt}")
    return root


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path
