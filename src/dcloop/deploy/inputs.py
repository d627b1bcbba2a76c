"""Turning request bodies into model input, checked against the served model's metadata.

Every problem is an HTTPException with a 4xx status and a one-line detail; nothing here raises
anything else for bad input.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from fastapi import HTTPException, Request

DTYPES = {"FP32": np.float32, "UINT8": np.uint8}


def bad(detail: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (413) without reading past it."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise bad(f"Request body must be at most {limit} bytes. Got content-length {declared[:20]}.", 413)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise bad(f"Request body must be at most {limit} bytes.", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_image(data: bytes, shape: tuple[int, int, int], max_pixels: int) -> np.ndarray:
    """Any Pillow-readable image, converted to the model's colour mode and size: uint8 (C, H, W)."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise bad(
                    f"Image must have at most {max_pixels} pixels. Got {image.width}x{image.height}.", 413
                )
            converted = image.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
    except HTTPException:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise bad(
            f"Upload is not a readable image: {exc}", 415 if isinstance(exc, UnidentifiedImageError) else 413
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # truncated or corrupt files
        raise bad(f"Image cannot be decoded: {exc}") from None
    return array[None] if c == 1 else array.transpose(2, 0, 1).copy()


def pixels_from_json(value: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """A nested list H x W or C x H x W: integers are 0-255 pixels (uint8), floats are in [0, 1]."""
    c, h, w = shape
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise bad("`pixels` must be a rectangular nested list of numbers.") from None
    if array.dtype == object or array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        raise bad("`pixels` must be a rectangular nested list of numbers.")
    given = "x".join(map(str, array.shape)) or "a scalar"
    if array.ndim == 2 and c == 1:
        array = array[None]
    if array.shape != (c, h, w):
        expected = f"{h}x{w} or {c}x{h}x{w}" if c == 1 else f"{c}x{h}x{w}"
        raise bad(f"`pixels` must be shaped {expected}. Got {given}.", 422)
    return checked_array(
        array.astype(np.uint8) if array.dtype.kind in "iu" and _in_range(array, 0, 255) else array, "pixels"
    )


def _in_range(array: np.ndarray, low: float, high: float) -> bool:
    return bool(array.size == 0 or (array.min() >= low and array.max() <= high))


def checked_array(array: np.ndarray, field: str) -> np.ndarray:
    """uint8 as is; any other numbers must be finite floats in [0, 1] (returned as float32)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        raise bad(f"`{field}` integers must be 0-255 pixels.", 422)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values become inf and are refused below
        as_float = array.astype(np.float32)
    if not np.isfinite(as_float).all() or not _in_range(as_float, 0.0, 1.0):
        raise bad(f"`{field}` floats must be finite and in [0, 1].", 422)
    return as_float
