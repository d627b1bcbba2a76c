"""Post-training static int8 quantization of an ONNX model with ONNX Runtime.

Static (not dynamic) quantization: activation ranges are calibrated once on training images, so
convolutions run as int8 kernels. Dynamic quantization recomputes ranges per call and slows CNNs.
The model is written in QDQ form with per-channel weights, after ORT's pre-processing pass
(shape inference and graph optimisation) so quantization sees fused, fully-shaped nodes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from dcloop.atomic import replacing
from dcloop.errors import DataError
from dcloop.optimize._onnx import INPUT_NAME

log = logging.getLogger(__name__)


def check_calibration(images: np.ndarray, input_shape: tuple[int, int, int]) -> None:
    """Calibration images must be uint8 (N, C, H, W) with the model's (C, H, W) and N >= 1."""
    if images.dtype != np.uint8:
        raise DataError(
            f"Calibration images must be uint8 (N, C, H, W) as stored in a data set. Got dtype {images.dtype}."
        )
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape) or len(images) == 0:
        raise DataError(
            f"Calibration images must be shaped (N, {', '.join(map(str, input_shape))}) with N >= 1. "
            f"Got shape {tuple(images.shape)}."
        )


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    images: np.ndarray,
    input_shape: tuple[int, int, int],
    *,
    method: str = "minmax",
    per_channel: bool = True,
    batch_size: int = 64,
) -> Path:
    """Write a static int8 (QDQ) copy of ``fp32_path`` calibrated on uint8 ``images``; return its path."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_calibration(images, input_shape)
    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]

    class _Reader(CalibrationDataReader):  # ORT's reader interface is a class it subclasses itself
        def __init__(self) -> None:
            self._starts = iter(range(0, len(images), batch_size))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._starts, None)
            if start is None:
                return None
            return {INPUT_NAME: images[start : start + batch_size].astype(np.float32) / 255.0}

    with replacing(out_path) as staged, tempfile.TemporaryDirectory(prefix="dcloop-quant-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared),
            str(staged),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
        _compact(staged)
    log.info("static int8 model (%d calibration images) written to %s", len(images), out_path)
    return out_path


def calibration_images(x_train: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """A seeded random subset of ``count`` training images (all when fewer), in a fixed order."""
    if count >= len(x_train):
        return np.ascontiguousarray(x_train)
    index = np.sort(np.random.default_rng(seed).choice(len(x_train), size=count, replace=False))
    return np.ascontiguousarray(x_train[index])


def _compact(path: Path) -> None:
    """Shorten tensor names and drop node names, doc strings and inferred shapes (value_info).

    QDQ quantization names every tensor after its source (``layer.weight_quantized_scale``...);
    in a small CNN these names are a sixth of the file. Graph inputs and outputs keep their names.
    A graph with sub-graphs (control flow) is left as it is.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for n in graph.node
        for a in n.attribute
    ):
        return
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    for node in graph.node:
        node.name, node.doc_string = "", ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del graph.value_info[:]
    onnx.save(model, str(path))
