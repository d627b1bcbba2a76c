"""Turning request bodies into model input, checked against the served model's metadata.

Every problem is an HTTPException with a 4xx status and a one-line detail; nothing here raises
anything else for bad input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import HTTPException, Request

from dcloop.data import ImageRejected
from dcloop.data import decode_image as decode_pixels

DTYPES = {"FP32": np.float32, "UINT8": np.uint8}


def bad(detail: str, status: int = 400) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


def _too_large(detail: str) -> HTTPException:
    return HTTPException(status_code=413, detail=detail, headers={"Connection": "close"})


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (413) without reading past it.

    The 413 says ``Connection: close``: the unread rest of the body would otherwise have to be
    received and dropped before the connection could carry another request.
    """
    declared = request.headers.get("content-length")
    # ASCII digits only ("²".isdigit() is true, int("²") raises), and no int() of thousands of digits.
    if declared is not None and (
        not (declared.isascii() and declared.isdigit()) or len(declared) > 18 or int(declared) > limit
    ):
        raise _too_large(f"Request body must be at most {limit} bytes. Got content-length {declared[:20]}.")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(f"Request body must be at most {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_image(data: bytes, shape: tuple[int, int, int], max_pixels: int) -> np.ndarray:
    """Any Pillow-readable image as uint8 (C, H, W), decoded exactly as `dcloop data import` decodes files."""
    c, h, w = shape
    try:
        return decode_pixels(data, c, h, w, max_pixels)
    except ImageRejected as rejected:
        if rejected.rule == "too_large":
            raise bad(f"Image {rejected.reason}.", 413) from None
        # 415 when no format was recognised; a recognised but damaged image is a bad request
        status = 400 if rejected.format else 415
        raise bad(f"Upload is not a readable image: {rejected.reason}.", status) from None


def pixels_from_json(value: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """A nested list H x W or C x H x W: integers are 0-255 pixels (uint8), floats are in [0, 1]."""
    c, h, w = shape
    if c == 1 and (fast := _uint8_rows(value, h, w)) is not None:
        return fast
    return _any_pixels(value, shape)


def _any_pixels(value: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """``pixels_from_json`` for any value: numpy reads the nested lists and says what is wrong."""
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


def _uint8_rows(value: Any, h: int, w: int) -> np.ndarray | None:
    """``value`` as uint8 (1, h, w) when it is ``h`` lists of ``w`` integers 0-255, the usual JSON
    body, or None: anything else takes the general path, which says what is wrong with it.

    ``bytes(row)`` reads a list of such integers in C, where ``np.asarray`` walks the nested lists
    (4x faster for 28x28; it raises for a float, a string, a number out of range). A JSON ``true``
    is the integer 1 to both, but an array of booleans only is refused by the general path, so one
    whose first pixel is a boolean goes there.
    """
    if type(value) is not list or len(value) != h:
        return None
    for row in value:
        if type(row) is not list or len(row) != w:
            return None
    if h and w and type(value[0][0]) is bool:
        return None
    try:
        data = bytearray().join([bytes(row) for row in value])
    except (TypeError, ValueError):
        return None
    return np.frombuffer(data, dtype=np.uint8).reshape(1, h, w)


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


def checked_texts(values: list[Any], field: str) -> list[str]:
    """``values`` as texts: each a string with some non-whitespace character, valid Unicode."""
    for i, value in enumerate(values):
        where = field if len(values) == 1 else f"{field}[{i}]"
        if not isinstance(value, str):
            raise bad(f"`{where}` must be a string. Got {type(value).__name__}.", 422)
        if not value.strip():
            raise bad(f"`{where}` must hold some text; it is empty or only whitespace.", 422)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no tokenizer or store can take it
            raise bad(f"`{where}` must be valid Unicode text (it holds a lone surrogate).", 422) from None
    return values


def split_bytes(blob: bytes, count: int) -> list[bytes]:
    """The ``count`` elements of a BYTES tensor in binary form: each a 4-byte little-endian length, then
    that many bytes; anything else (a prefix past the end, bytes left over, another count) is a 400."""
    items: list[bytes] = []
    at = 0
    while at < len(blob):
        if len(items) == count:
            raise bad(
                f"BYTES binary data holds more than the {count} elements its shape says ({len(blob) - at} bytes left over)."
            )
        if at + 4 > len(blob):
            raise bad(f"BYTES binary data ends inside the 4-byte length prefix of element {len(items)}.")
        size = int.from_bytes(blob[at : at + 4], "little")
        at += 4
        if size > len(blob) - at:
            raise bad(
                f"BYTES element {len(items)} declares {size} bytes but only {len(blob) - at} follow its prefix."
            )
        items.append(blob[at : at + size])
        at += size
    if len(items) != count:
        raise bad(f"BYTES binary data holds {len(items)} elements; its shape says {count}.")
    return items


def utf8_texts(items: list[bytes]) -> list[str]:
    """BYTES elements as text (UTF-8, strict): a 400 naming the first that is not."""
    texts = []
    for i, item in enumerate(items):
        try:
            texts.append(item.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise bad(f"BYTES element {i} is not UTF-8 text: {exc.reason} at byte {exc.start}.") from None
    return texts
