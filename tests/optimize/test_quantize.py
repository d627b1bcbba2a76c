"""Static int8: agrees with fp32 on real images, shrinks a real-size model, rejects bad calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcloop.errors import DataError
from dcloop.optimize import export_onnx
from dcloop.optimize._onnx import onnx_logits, onnx_session
from dcloop.optimize._quantize import calibration_images, quantize_int8

# Stated bound: static int8 (per-channel QDQ, min-max calibration) keeps >= 97% of top-1 decisions.
MIN_AGREEMENT = 0.97


def _top1(path: Path, x: np.ndarray) -> np.ndarray:
    return onnx_logits(onnx_session(path), x.astype(np.float32) / 255.0).argmax(axis=1)


def test_int8_agrees_with_fp32_on_real_images(catdog_ws, trained_run, tmp_path: Path) -> None:
    from dcloop.train import load_trained

    trained = load_trained(catdog_ws, trained_run.id)
    data = trained.dataset
    fp32 = export_onnx(trained.model, tmp_path / "fp32.onnx", data.image_shape)
    x_train, _ = data.arrays("train")
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", calibration_images(x_train, 128), data.image_shape)
    x_test, _ = data.arrays("test")
    agreement = float((_top1(fp32, x_test) == _top1(int8, x_test)).mean())
    assert agreement >= MIN_AGREEMENT, agreement


def test_int8_shrinks_a_real_size_model(tmp_path: Path) -> None:
    from dcloop.train._models import create_model

    torch.manual_seed(0)
    model = create_model("resnet-s", 1, 2, 28)
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", (1, 28, 28))
    images = np.random.default_rng(0).integers(0, 256, size=(64, 1, 28, 28), dtype=np.uint8)
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", images, (1, 28, 28))
    assert fp32.stat().st_size / int8.stat().st_size >= 3.5
    x = images[:8].astype(np.float32) / 255.0
    assert onnx_logits(onnx_session(int8), x).shape == (8, 2)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((4, 1, 28, 28), dtype=np.float32), "must be uint8 .* Got dtype float32"),
        (
            np.zeros((4, 3, 28, 28), dtype=np.uint8),
            r"shaped \(N, 1, 28, 28\) with N >= 1. Got shape \(4, 3, 28, 28\)",
        ),
        (np.zeros((4, 28, 28), dtype=np.uint8), r"Got shape \(4, 28, 28\)"),
        (np.zeros((0, 1, 28, 28), dtype=np.uint8), r"Got shape \(0, 1, 28, 28\)"),
    ],
)
def test_bad_calibration_is_refused_and_nothing_written(
    images: np.ndarray, message: str, tmp_path: Path
) -> None:
    from dcloop.train._models import create_model

    fp32 = export_onnx(create_model("tiny-cnn", 1, 2, 28), tmp_path / "fp32.onnx", (1, 28, 28))
    with pytest.raises(DataError, match=message):
        quantize_int8(fp32, tmp_path / "int8.onnx", images, (1, 28, 28))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32.onnx"]
