"""One image, as a file (import) or as request bytes (/predict), decoded to uint8 (C, H, W).

Import and serving share this decoder so a model sees the same pixels in production as in training.
Every way an image can be unusable ends in ``ImageRejected`` with a quarantine rule and a one-line
reason: the size is checked against a pixel budget from the header before any pixel is decoded,
and 16-bit, 32-bit integer and float images are scaled to 8 bits (Pillow's own conversion clips
them, which leaves a 16-bit image black and white).
"""

from __future__ import annotations

import functools
import io
import os
import stat
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from dcloop.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

# Leading bytes of common formats, to tell a damaged image from a file that is none.
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")
_REASON_CHARS = 200
# Formats Pillow reads only by running another program on the file: never for files users hand us.
_REFUSED = {"EPS": (b"%!PS", b"\xc5\xd0\xd3\xc6")}  # rasterised by Ghostscript
_UINT16_MAX = 65535


class ImageRejected(DataError):
    """An image cannot be used.

    ``rule`` is the quarantine rule (empty_file, not_an_image, undecodable, too_large, unreadable),
    ``reason`` one line saying why, and ``format`` the format Pillow recognised (None when it
    recognised none, so the bytes are no image it knows).
    """

    def __init__(self, rule: str, reason: str, image_format: str | None = None) -> None:
        super().__init__(reason)
        self.rule, self.reason, self.format = rule, reason, image_format


def decode_image(source: bytes | Path, channels: int, height: int, width: int, max_pixels: int) -> np.ndarray:
    """An image file or its bytes as uint8 (channels, height, width), channels 1 (L) or 3 (RGB).

    Raises ImageRejected when it cannot be used, larger than ``max_pixels`` (width x height) included.
    """
    if not isinstance(source, Path):
        return _decode(io.BytesIO(source), len(source), channels, (width, height), max_pixels)
    with _open_file(source) as file:
        return _decode(file, os.fstat(file.fileno()).st_size, channels, (width, height), max_pixels)


def _open_file(path: Path) -> IO[bytes]:
    try:
        info = os.stat(path)  # follows links: a loop or a dangling link fails here
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read forever
            raise ImageRejected("unreadable", "not a regular file")
        return open(path, "rb")
    except OSError as exc:
        raise ImageRejected("unreadable", f"cannot be read: {exc.strerror or exc}") from None


def _decode(file: IO[bytes], size: int, channels: int, wh: tuple[int, int], max_pixels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if size == 0:
        raise ImageRejected("empty_file", "zero-byte file")
    try:
        opened = Image.open(file, formats=_formats())
    except UnidentifiedImageError:
        file.seek(0)
        head = file.read(8)
        if head.startswith(_SIGNATURES):
            raise ImageRejected("undecodable", "damaged image: its header cannot be parsed") from None
        for refused, signatures in _REFUSED.items():
            if head.startswith(signatures):
                reason = f"{refused} is not decoded: Pillow would run an external program on it"
                raise ImageRejected("not_an_image", reason) from None
        raise ImageRejected("not_an_image", "not a recognised image format") from None
    except Exception as exc:  # any error of a format plugin: see _undecodable
        raise _undecodable(None, exc) from None
    with opened:
        image_format = opened.format
        try:
            _check_budget(opened, max_pixels)  # from the header: nothing is decoded yet
            opened.load()
            _check_budget(opened, max_pixels)  # a few formats only learn their size while loading
            converted = _eight_bit(opened, channels).resize(wh, Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.uint8)
        except ImageRejected:
            raise
        except Exception as exc:  # any error of a format plugin: see _undecodable
            raise _undecodable(image_format, exc) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy()


@functools.cache
def _formats() -> tuple[str, ...]:
    from PIL import Image

    Image.init()  # registers every format plugin
    return tuple(name for name in Image.OPEN if name not in _REFUSED)


def _undecodable(image_format: str | None, exc: Exception) -> ImageRejected:
    """Pillow's format plugins raise any built-in error on malformed input (NotImplementedError,
    AttributeError, TypeError, struct.error, ... besides OSError, ValueError and SyntaxError; its
    own fuzz harness accepts any Exception), so each one is a property of the file, not a bug here."""
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return ImageRejected("too_large", _one_line(f"too many pixels for Pillow: {exc}"), image_format)
    if isinstance(exc, MemoryError):
        return ImageRejected("too_large", "decoding it needs more memory than is free", image_format)
    what = f"{image_format} image" if image_format else "image"
    detail = _one_line(f"{type(exc).__name__}: {exc}")
    return ImageRejected("undecodable", f"{what} cannot be decoded ({detail})", image_format)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def _check_budget(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(
            "too_large", f"must have at most {max_pixels} pixels. Got {width}x{height}", image.format
        )


def _eight_bit(image: Image.Image, channels: int) -> Image.Image:
    """The image in mode L (channels 1) or RGB (3), high bit depths scaled rather than clipped."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return Image.fromarray(to_uint8(np.asarray(image)), "L").convert(mode)
    if image.mode in ("P", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")  # palette and transparency resolve through RGBA; alpha is dropped
    return image.convert(mode)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Pixels of any bit depth as uint8 0-255, scaled by their range instead of clipped.

    16-bit values (and 32-bit integers within 0-65535, as Pillow stores 16-bit PGM) scale by 255/65535;
    floats within [0, 1] by 255; any other integers or floats stretch their own min..max to 0..255,
    since a 32-bit range has no conventional white. NaN and -inf take the lowest finite value, +inf
    the highest.
    """
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind in "iu":
        low, high = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
        if low >= 0 and high <= _UINT16_MAX:
            wide = pixels.astype(np.uint32)
            return ((wide * 255 + _UINT16_MAX // 2) // _UINT16_MAX).astype(np.uint8)
        return _stretch(pixels.astype(np.float64), low, high)
    values = pixels.astype(np.float64)
    finite = values[np.isfinite(values)]
    bottom, top = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    values = np.nan_to_num(values, nan=bottom, posinf=top, neginf=bottom)
    if bottom >= 0.0 and top <= 1.0:
        return np.rint(values * 255).astype(np.uint8)
    return _stretch(values, bottom, top)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255 / (high - low))).astype(np.uint8)
