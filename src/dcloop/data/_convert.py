"""Conversion to the stored form: uint8 (N, C, H, W), one colour mode, one square size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dcloop import progress
from dcloop.errors import DataError

CHANNELS = {"grayscale": 1, "rgb": 3}
# Leading bytes of the formats dcloop reads, to tell a damaged image from a file that is none.
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"RIFF")


class Rejected(Exception):
    """An input file cannot be used; ``rule`` names the cleaning rule that quarantines it."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule, self.reason = rule, reason


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


def decode_file(path: Path, image_size: int, color: str) -> np.ndarray:
    """Decode one image file to (C, H, W) uint8, or raise Rejected naming why it is unusable."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            raise Rejected("empty_file", "zero-byte file")
        with Image.open(path) as opened:
            opened.load()  # decodes fully, so a truncated file fails here
            image: Image.Image = opened
            if image.mode in ("P", "LA", "PA") or "transparency" in image.info:
                image = image.convert("RGBA")
            mode = "L" if color == "grayscale" else "RGB"
            converted = image.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
    except UnidentifiedImageError:
        if _looks_like_image(path):
            raise Rejected("undecodable", "damaged image: its header cannot be parsed") from None
        raise Rejected("not_an_image", "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejected("undecodable", f"cannot decode: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise Rejected("undecodable", str(exc)) from None
    pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _looks_like_image(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(8).startswith(_SIGNATURES)
