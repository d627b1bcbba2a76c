"""Fixtures of the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from datagen import write_image_folder


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    """A folder of 3 classes x 10 PNG images, 8x8 grayscale."""
    return write_image_folder(tmp_path / "pets", {"cat": 10, "dog": 10, "owl": 10})
