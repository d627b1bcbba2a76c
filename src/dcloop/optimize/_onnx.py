"""ONNX export of a zoo model and its numeric parity check against PyTorch.

The exported file is the deployable form of a model: one self-contained ``.onnx`` (no external
data), input ``input`` float32 (N, C, H, W) in [0, 1], output ``logits``, batch dimension dynamic.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcloop.atomic import replacing
from dcloop.errors import DataError, DcloopError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MIN_OPSET = 17


def export_onnx(model: nn.Module, path: Path, input_shape: tuple[int, int, int], opset: int = 17) -> Path:
    """Write ``model`` as one ONNX file at ``path`` (atomically) and return the path.

    ``input_shape`` is (C, H, W); the batch dimension is dynamic. An operator ONNX cannot express
    raises a DcloopError naming the operator; nothing is left at ``path`` then.
    """
    import torch

    if opset < MIN_OPSET:
        raise DcloopError(f"ONNX opset must be >= {MIN_OPSET}. Got {opset}.")
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        with replacing(path) as tmp:
            _run_export(model, torch.rand(2, *input_shape), tmp, opset)
    finally:
        model.train(was_training)
    log.info("exported ONNX model to %s (opset %d)", path, opset)
    return path


def _run_export(model: nn.Module, example: object, target: Path, opset: int) -> None:
    import torch
    from torch.onnx.errors import OnnxExporterError, UnsupportedOperatorError

    # The TorchScript exporter handles these CNNs reliably and writes one file; the dynamo exporter
    # needs onnxscript rewrites and splits large weights into external data.
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(target),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except UnsupportedOperatorError as error:
        raise DcloopError(f"Cannot export the model to ONNX: {_first_line(error)}.") from error
    except (OnnxExporterError, RuntimeError) as error:
        raise DcloopError(f"Cannot export the model to ONNX: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


def onnx_session(path: Path, threads: int = 1, spinning: bool = True) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (0 = runtime default).

    ``spinning=False`` keeps idle intra-op threads from busy-waiting, for a server whose HTTP handling
    and store need the same cores. A file ONNX Runtime cannot load is a one-line DataError.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise DataError(f"{path} is not a loadable ONNX model: {str(exc).splitlines()[0]}.") from None


def onnx_logits(session: object, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run float32 images (N, C, H, W) in [0, 1] through an ONNX session in batches."""
    outputs = [
        session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x[i : i + batch_size])})[0]  # type: ignore[attr-defined]
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def as_float_images(x: np.ndarray) -> np.ndarray:
    """uint8 images become float32 in [0, 1]; float images pass through as float32."""
    if x.ndim != 4:
        raise DataError(f"Images must be shaped (N, C, H, W). Got shape {tuple(x.shape)}.")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise DataError(f"Images must be uint8 or float32. Got dtype {x.dtype}.")


def check_parity(model: nn.Module, onnx_path: Path, x: np.ndarray) -> float:
    """Max absolute difference between PyTorch and ONNX Runtime logits on images ``x``.

    ``x`` is uint8 (N, C, H, W) as stored in a data set, or float32 in [0, 1].
    """
    import torch

    images = as_float_images(np.asarray(x))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = np.concatenate(
                [model(torch.from_numpy(images[i : i + 256])).numpy() for i in range(0, len(images), 256)]
            )
    finally:
        model.train(was_training)
    got = onnx_logits(onnx_session(Path(onnx_path)), images)
    return float(np.abs(expected.astype(np.float64) - got.astype(np.float64)).max(initial=0.0))
