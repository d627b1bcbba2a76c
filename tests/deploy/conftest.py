"""Fixtures of the deployment tests: small ONNX classifiers, a workspace with a registered model,
and a uvicorn server on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploykit import CLASSES, serving, tiny_cnn_onnx


@pytest.fixture
def onnx_path(tmp_path: Path) -> Path:
    return tiny_cnn_onnx(tmp_path / "tiny.onnx")


@pytest.fixture
def served_ws(workspace, onnx_path: Path):
    """A workspace with pets@1 (tiny-cnn) registered and promoted to champion."""
    from dcloop.deploy import promote, register_model_version

    register_model_version(workspace, onnx_path, name="pets", classes=CLASSES)
    promote(workspace, "pets", version=1)
    return workspace


@pytest.fixture
def live_server(served_ws) -> Iterator[str]:
    """The app over a real socket (uvicorn in a thread, as ``dcloop serve`` runs it); yields its base URL."""
    from dcloop.deploy import create_app

    with serving(create_app(served_ws, "pets@champion", token="s3cret", max_queue_delay_ms=2)) as url:
        yield url
