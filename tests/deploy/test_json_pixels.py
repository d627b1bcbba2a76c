"""JSON pixels: the fast reading of h lists of w integers agrees with numpy's general one on any value."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from dcloop.deploy._inputs import _any_pixels, pixels_from_json

PIXEL = st.one_of(
    st.integers(-3, 260),
    st.integers(0, 255),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.none(),
    st.text(max_size=2),
)
SIZES = st.integers(1, 4)


def _outcome(read, value, shape):
    """The array read (dtype and values) or the error answered (status and detail)."""
    try:
        array = read(value, shape)
    except HTTPException as exc:
        return "error", exc.status_code, exc.detail
    return "array", array.dtype.str, array.shape, array.tolist()


@st.composite
def bodies(draw):
    """A ``pixels`` value: mostly h lists of w numbers, sometimes ragged, deeper, flat or not a list."""
    h, w = draw(SIZES), draw(SIZES)
    cell = draw(st.sampled_from([st.integers(0, 255), PIXEL]))
    rows = draw(st.lists(st.lists(cell, min_size=w, max_size=w), min_size=h, max_size=h))
    kind = draw(st.sampled_from(["grid", "grid", "ragged", "channel", "flat", "scalar", "row-not-list"]))
    if kind == "ragged" and rows:
        rows[draw(st.integers(0, len(rows) - 1))].append(draw(cell))
    elif kind == "channel":
        rows = [rows]
    elif kind == "flat":
        rows = [v for row in rows for v in row]
    elif kind == "scalar":
        rows = draw(PIXEL)
    elif kind == "row-not-list" and rows:
        rows[0] = draw(
            st.one_of(
                st.integers(0, 9),
                st.text(max_size=3),
                st.dictionaries(st.text(max_size=1), st.integers(), max_size=2),
            )
        )
    return rows, (1, draw(st.sampled_from([h, h + 1])), draw(st.sampled_from([w, w + 1])))


@given(bodies())
def test_fast_and_general_readings_agree(body) -> None:
    value, shape = body
    assert _outcome(pixels_from_json, value, shape) == _outcome(_any_pixels, value, shape)


def test_integer_grid_reads_as_uint8_that_can_be_written() -> None:
    grid = [[(r * 7 + c) % 256 for c in range(28)] for r in range(28)]
    array = pixels_from_json(grid, (1, 28, 28))
    assert array.dtype == np.uint8 and array.shape == (1, 28, 28)
    assert np.array_equal(array[0], np.asarray(grid))
    array[0, 0, 0] = 1  # the caller owns it, as it owns numpy's reading


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ([[True, False], [False, True]], "rectangular nested list of numbers"),
        ([[1, 256], [0, 0]], "integers must be 0-255"),
        ([[0.5, 2.0], [0, 0]], "floats must be finite and in [0, 1]"),
        ([[1, 2], [3]], "rectangular nested list of numbers"),
    ],
)
def test_what_the_fast_reading_leaves_is_refused_as_before(value, detail) -> None:
    with pytest.raises(HTTPException) as caught:
        pixels_from_json(value, (1, 2, 2))
    assert detail in caught.value.detail and 400 <= caught.value.status_code < 500
