"""The one image decoder of import and /predict: every bad file ends in ImageRejected with a one-line
reason, the pixel budget is read from the header, and high bit depths are scaled, not clipped."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from badimages import FORMATS, decoder_failures, encoded, png_header, saved
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from dcloop.data import ImageRejected, decode_image
from dcloop.data._decode import to_uint8
from dcloop.deploy._inputs import decode_image as decode_upload

RULES = {"empty_file", "not_an_image", "undecodable", "too_large", "unreadable"}
BUDGET = 1_000_000


def _rejected(source: bytes | Path, max_pixels: int = BUDGET) -> ImageRejected:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warnings about damaged metadata are not the subject
        with pytest.raises(ImageRejected) as caught:
            decode_image(source, 1, 8, 8, max_pixels)
    error = caught.value
    assert error.rule in RULES and error.reason == str(error)
    assert error.reason and "\n" not in error.reason and len(error.reason) <= 200
    return error


@pytest.mark.parametrize("name", sorted(decoder_failures()))
def test_each_known_decoder_failure_is_rejected_with_its_reason(name: str) -> None:
    data, raised = decoder_failures()[name]
    with pytest.raises(raised):  # what Pillow itself raises on this file, uncaught before
        Image.open(io.BytesIO(data)).load()
    error = _rejected(data)
    assert error.rule == "undecodable"
    assert raised.__name__ in error.reason


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_pillow_writes_decodes_to_the_asked_shape(fmt: str) -> None:
    for channels in (1, 3):
        pixels = decode_image(saved(fmt, size=12), channels, 5, 7, BUDGET)
        assert pixels.dtype == np.uint8 and pixels.shape == (channels, 5, 7)


@settings(max_examples=300)
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    edits=st.lists(st.tuples(st.integers(0, 2_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.none() | st.integers(0, 2_000),
)
def test_damaged_files_decode_or_are_rejected_never_crash(
    fmt: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(saved(fmt))
    for position, value in edits:
        data[position % len(data)] = value
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = decode_image(bytes(data[:cut]), 1, 8, 8, BUDGET)
    except ImageRejected as error:
        assert error.rule in RULES and "\n" not in error.reason
    else:
        assert pixels.dtype == np.uint8 and pixels.shape == (1, 8, 8)


@settings(max_examples=100)
@given(width=st.integers(1, 20_000), height=st.integers(1, 20_000), budget=st.integers(1, 50_000_000))
def test_the_pixel_budget_is_checked_on_the_header_before_decoding(
    width: int, height: int, budget: int
) -> None:
    # The file holds 64 bytes of pixel data whatever its header says, so decoding it always fails:
    # "too_large" can only come from the header, before any decoding.
    error = _rejected(png_header(width, height), budget)
    assert error.rule == ("too_large" if width * height > budget else "undecodable")
    if (
        error.rule == "too_large" and width * height <= 2 * Image.MAX_IMAGE_PIXELS
    ):  # else Pillow refuses first
        assert error.reason == f"must have at most {budget} pixels. Got {width}x{height}"


@settings(max_examples=100)
@given(arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 6))))
def test_16_bit_images_are_scaled_not_clipped(pixels: np.ndarray) -> None:
    expected = np.floor(pixels / 257 + 0.5).astype(np.uint8)  # 65535 -> 255, never a tie
    h, w = pixels.shape
    for fmt in ("PNG", "TIFF", "PPM"):  # Pillow opens these as I;16, I;16 and I (32-bit)
        decoded = decode_image(encoded(pixels, fmt), 1, h, w, BUDGET)
        np.testing.assert_array_equal(decoded[0], expected)
    np.testing.assert_array_equal(decode_image(encoded(pixels), 3, h, w, BUDGET), np.stack([expected] * 3))


def test_a_16_bit_gradient_keeps_its_256_levels() -> None:
    ramp = (np.arange(256 * 4, dtype=np.uint32) * 64).astype(np.uint16).reshape(32, 32)
    decoded = decode_image(encoded(ramp), 1, 32, 32, BUDGET)
    assert len(np.unique(decoded)) == 256  # Pillow's own I;16 -> L clips: 0, 64, 128, 192, 255


@given(
    arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=st.floats(0, 1, width=32))
)
def test_float_images_in_0_1_scale_by_255(pixels: np.ndarray) -> None:
    h, w = pixels.shape
    decoded = decode_image(encoded(pixels, "TIFF"), 1, h, w, BUDGET)
    np.testing.assert_array_equal(decoded[0], np.rint(pixels.astype(np.float64) * 255).astype(np.uint8))


_SHAPES = st.tuples(st.integers(1, 5), st.integers(2, 5))


@given(
    arrays(np.int32, _SHAPES, elements=st.integers(-(2**31), 2**31 - 1))
    | arrays(np.float32, _SHAPES, elements=st.floats(-(2.0**100), 2.0**100, width=32))
)
def test_wide_ranges_stretch_to_0_255_in_order(pixels: np.ndarray) -> None:
    scaled = to_uint8(pixels)
    assert scaled.dtype == np.uint8 and scaled.shape == pixels.shape
    order = np.argsort(pixels, axis=None, kind="stable")
    assert np.all(np.diff(scaled.ravel()[order].astype(int)) >= 0)  # brighter stays brighter
    low, high = pixels.min(), pixels.max()
    fits = low >= 0 and high <= (65535 if pixels.dtype.kind == "i" else 1)
    if not fits and high > low:
        assert scaled.min() == 0 and scaled.max() == 255


def test_nan_and_infinities_take_the_ends_of_the_range() -> None:
    pixels = np.array([[np.nan, -np.inf, 0.0, 2.0, np.inf]], dtype=np.float32)
    assert to_uint8(pixels).tolist() == [[0, 0, 0, 255, 255]]


@pytest.mark.parametrize(
    ("data", "rule", "reason"),
    [
        (b"", "empty_file", "zero-byte file"),
        (b"plain text, no image", "not_an_image", "not a recognised image format"),
        (b"\x89PNG\r\n\x1a\n broken", "undecodable", "damaged image: its header cannot be parsed"),
        (saved("PNG")[:60], "undecodable", "PNG image cannot be decoded (OSError: "),
    ],
)
def test_plain_bad_inputs(data: bytes, rule: str, reason: str) -> None:
    error = _rejected(data)
    assert error.rule == rule and error.reason.startswith(reason)


def test_eps_is_refused_unread_since_pillow_would_run_ghostscript_on_it() -> None:
    out = io.BytesIO()
    Image.new("L", (4, 4)).save(out, "EPS")
    assert Image.open(io.BytesIO(out.getvalue())).format == "EPS"  # Pillow itself would take it
    error = _rejected(out.getvalue())
    assert error.rule == "not_an_image" and error.reason.startswith("EPS is not decoded")


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    os.symlink("loop.png", tmp_path / "loop.png")
    assert _rejected(tmp_path / "loop.png").rule == "unreadable"
    os.mkfifo(tmp_path / "pipe.png")  # opening it to read would wait for a writer forever
    assert _rejected(tmp_path / "pipe.png").reason == "not a regular file"
    assert _rejected(tmp_path).reason == "not a regular file"
    (tmp_path / "ok.png").write_bytes(saved("PNG"))
    assert decode_image(tmp_path / "ok.png", 1, 8, 8, BUDGET).shape == (1, 8, 8)


_UPLOADS = {
    **{
        name: (data, 400 if name in ("blp", "tiff") else 415, raised.__name__)  # DDS, SPIDER fail at open
        for name, (data, raised) in decoder_failures().items()
    },
    "too-large": (png_header(5_000, 5_000), 413, "Image must have at most 1000000 pixels. Got 5000x5000."),
    "text": (b"no image", 415, "Upload is not a readable image: not a recognised image format."),
}


@pytest.mark.parametrize(("data", "status", "text"), _UPLOADS.values(), ids=list(_UPLOADS))
def test_predict_answers_each_rejection_with_a_4xx(data: bytes, status: int, text: str) -> None:
    with pytest.raises(HTTPException) as caught:
        decode_upload(data, (1, 28, 28), BUDGET)
    assert caught.value.status_code == status and text in caught.value.detail
