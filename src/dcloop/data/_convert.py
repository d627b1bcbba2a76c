"""Conversion to the stored form: uint8 (N, C, H, W), one colour mode, one square size."""

from __future__ import annotations

import numpy as np

from dcloop import progress
from dcloop.errors import DataError

CHANNELS = {"grayscale": 1, "rgb": 3}


def to_nchw(x: np.ndarray, origin: str) -> np.ndarray:
    """Accept (N, H, W), (N, H, W, C) or (N, C, H, W) uint8 and return (N, C, H, W)."""
    if x.dtype != np.uint8:
        raise DataError(f"{origin}: images must be uint8. Got {x.dtype}.")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            return x.transpose(0, 3, 1, 2)
        if x.shape[1] in (1, 3, 4):
            return x
    raise DataError(
        f"{origin}: images must have shape (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4. "
        f"Got {tuple(x.shape)}."
    )


def convert_array(x: np.ndarray, image_size: int, color: str) -> np.ndarray:
    """(N, C, H, W) uint8 in any colour/size -> the configured colour mode and square size."""
    x = _to_color(x, color)
    if x.shape[2:] == (image_size, image_size):
        return np.ascontiguousarray(x)
    from PIL import Image

    out = np.empty((len(x), x.shape[1], image_size, image_size), dtype=np.uint8)
    for i, image in enumerate(progress.track(x, "resizing images")):
        for c, plane in enumerate(image):
            resized = Image.fromarray(plane).resize((image_size, image_size), Image.Resampling.BILINEAR)
            out[i, c] = np.asarray(resized)
    return out


def _to_color(x: np.ndarray, color: str) -> np.ndarray:
    channels = x.shape[1]
    if channels == 4:  # drop alpha
        x, channels = x[:, :3], 3
    if color == "grayscale" and channels == 3:
        # ITU-R 601-2 luma, the transform Pillow's convert("L") applies
        weights = np.array([299, 587, 114], dtype=np.uint32).reshape(1, 3, 1, 1)
        luma = (x.astype(np.uint32) * weights).sum(axis=1, keepdims=True)
        return ((luma + 500) // 1000).astype(np.uint8)
    if color == "rgb" and channels == 1:
        return np.repeat(x, 3, axis=1)
    return x
