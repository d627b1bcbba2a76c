"""Helpers of the deployment tests: small ONNX classifiers, synthetic images, loopback servers."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CLASSES = ["cat", "dog"]
SHAPE = (1, 28, 28)


def export(model, path: Path, shape=SHAPE) -> Path:
    """Export a torch module with the dcloop ONNX contract ("input" -> "logits", dynamic batch)."""
    import torch

    torch.set_num_threads(1)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is still supported
        _export(model, path, shape)
    return path


def _export(model, path: Path, shape) -> None:
    import torch

    torch.onnx.export(
        model,
        (torch.rand(2, *shape),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def tiny_cnn_onnx(path: Path, seed: int = 0) -> Path:
    import torch

    from dcloop.train._models import create_model

    torch.manual_seed(seed)
    return export(create_model("tiny-cnn", 1, 2, 28), path)


def halves_onnx(path: Path, good: bool) -> Path:
    """A hand-built classifier of `halves` images: cat = brighter left half, dog = brighter right half.

    ``good`` reads the halves; otherwise it always answers cat (50% accuracy, dog recall 0).
    """
    import torch
    from torch import nn

    class Halves(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left, right = x[..., :14].mean(dim=(1, 2, 3)), x[..., 14:].mean(dim=(1, 2, 3))
            d = (left - right) * 10 if good else torch.ones_like(left) + 0 * left
            return torch.stack([d, -d], dim=1)

    return export(Halves(), path)


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (N, 28, 28) uint8 with labels: cat (0) bright left half, dog (1) bright right."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(0, 100, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(y):
        cols = slice(0, 14) if label == 0 else slice(14, 28)
        x[i, :, cols] += 120
    return x, y


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Poll /v2/health/ready until it answers 200 (bounded)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not become ready in {timeout} s")


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` over a real socket, as ``dcloop serve`` runs it (uvicorn in a thread, the capped
    httptools protocol); yields its base URL once it answers ready, stops it on exit."""
    import uvicorn

    from dcloop.deploy._protocol import CappedHttpToolsProtocol

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=CappedHttpToolsProtocol, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
