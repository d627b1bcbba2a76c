"""ONNX export: parity with PyTorch, dynamic batch, one file, clear errors for unexportable models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dcloop.errors import DataError, DcloopError
from dcloop.optimize import check_parity, export_onnx
from dcloop.train._models import create_model


@pytest.mark.parametrize("name", ["tiny-cnn", "resnet-s", "seed-cnn"])
def test_export_matches_torch_on_any_batch_size(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, 1, 2, 28)
    path = export_onnx(model, tmp_path / "m.onnx", (1, 28, 28))
    assert path.is_file() and list(tmp_path.iterdir()) == [path]  # one file, no temp left behind
    rng = np.random.default_rng(0)
    for n in (1, 7, 300):
        x = rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)
        assert check_parity(model, path, x) <= 1e-4


def test_export_has_named_dynamic_io(tmp_path: Path) -> None:
    import onnx

    path = export_onnx(create_model("tiny-cnn", 3, 5, 16), tmp_path / "m.onnx", (3, 16, 16))
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 16, 16]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer)


def test_export_keeps_training_mode(tmp_path: Path) -> None:
    model = create_model("tiny-cnn", 1, 2, 28).train()
    export_onnx(model, tmp_path / "m.onnx", (1, 28, 28))
    assert model.training


class _FFTNet(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(x).abs().flatten(1)[:, :2]


def test_unexportable_operator_is_named_and_nothing_written(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    with pytest.raises(DcloopError, match=r"fft_fft2.*not supported"):
        export_onnx(_FFTNet(), target, (1, 28, 28))
    assert list(tmp_path.iterdir()) == []


def test_parity_rejects_wrong_images(tmp_path: Path) -> None:
    model = create_model("tiny-cnn", 1, 2, 28)
    path = export_onnx(model, tmp_path / "m.onnx", (1, 28, 28))
    with pytest.raises(DataError, match=r"shaped \(N, C, H, W\)"):
        check_parity(model, path, np.zeros((4, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=r"uint8 or float32\. Got dtype int64"):
        check_parity(model, path, np.zeros((4, 1, 28, 28), dtype=np.int64))
