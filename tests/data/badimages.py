"""Image files the decoder must survive: Pillow-made images in many formats, each known way a format
plugin fails on a damaged one, headers that promise more pixels than the budget, high bit depths."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# Formats Pillow writes (and so can read back); mode each one is saved from.
FORMATS = {
    "PNG": "L",
    "JPEG": "L",
    "BMP": "L",
    "GIF": "L",
    "TIFF": "L",
    "WEBP": "RGB",
    "PPM": "L",
    "ICO": "RGBA",
    "DDS": "RGBA",
    "BLP": "P",
    "SPIDER": "F",
    "TGA": "L",
    "PCX": "L",
    "SGI": "L",
    "QOI": "RGB",
}


def saved(fmt: str, size: int = 8, seed: int = 0) -> bytes:
    """A small random image written by Pillow in ``fmt``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(FORMATS[fmt])
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def encoded(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    """An array (uint16 -> I;16, int32 -> I, float32 -> F, uint8 -> L) written by Pillow."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


def decoder_failures() -> dict[str, tuple[bytes, type[BaseException]]]:
    """Files on which Pillow's own open + load raises something besides OSError/ValueError/SyntaxError,
    with the exception it raises."""
    from PIL.BlpImagePlugin import BLPFormatError

    dds = bytearray(saved("DDS", 4))
    dds[80:84] = bytes(4)  # pixel-format flags zeroed
    blp = bytearray(saved("BLP", 4))
    blp[4:8] = struct.pack("<i", 7)  # compression byte
    spider = bytearray(saved("SPIDER", 4))
    spider[104:108] = struct.pack("f", 1.0)  # image number in a stack without a stack offset
    tiff = bytearray(saved("TIFF", 4))
    tiff[72] = 2  # a tag's type turned to ASCII where an integer is expected
    return {
        "dds": (bytes(dds), NotImplementedError),
        "blp": (bytes(blp), BLPFormatError),
        "spider": (bytes(spider), AttributeError),
        "tiff": (bytes(tiff), TypeError),
    }


def png_header(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A PNG whose header says width x height, followed by an empty image data chunk and its end:
    decoding it fails, so only a check made on the header can tell it is too large."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
