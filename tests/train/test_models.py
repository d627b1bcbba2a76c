"""Every zoo model keeps the contract: shapes, finite output, gradients everywhere, ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcloop.errors import NotFoundError
from dcloop.train._models import create_model, describe_models, list_models

ZOO = sorted(list_models())


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize(("channels", "classes", "size"), [(1, 2, 28), (3, 10, 32)])
def test_shapes_finite_and_every_parameter_learns(name: str, channels: int, classes: int, size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, channels, classes, size)
    x = torch.rand(4, channels, size, size)
    logits = model(x)
    assert logits.shape == (4, classes)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.arange(4) % classes).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", ZOO)
def test_onnx_export_matches_torch(name: str, tmp_path: Path) -> None:
    # the project's own exporter and parity check, so the zoo contract covers what deploy ships
    from dcloop.optimize import check_parity, export_onnx

    torch.manual_seed(0)
    model = create_model(name, 1, 2, 28).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", (1, 28, 28))
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    assert check_parity(model, path, x) <= 1e-4


def test_describe_models_counts_parameters() -> None:
    rows = {r["name"]: r for r in describe_models()}
    assert set(rows) == set(ZOO)
    assert rows["seed-cnn"]["params"] == sum(
        p.numel() for p in create_model("seed-cnn", 1, 2, 28).parameters()
    )
    assert rows["tiny-cnn"]["params"] < rows["seed-cnn"]["params"] < rows["resnet-s"]["params"]
    assert all(r["description"] for r in rows.values())


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(
        NotFoundError,
        match=r"Unknown model 'resnet-x'\. Known: .*Did you mean 'resnet-[ms]' or 'resnet-[ms]'",
    ):
        create_model("resnet-x", 1, 2, 28)
