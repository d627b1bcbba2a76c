"""Open Inference Protocol v2 (KServe) REST routes, with the binary tensor data extension.

Binary requests carry ``Inference-Header-Content-Length``: the body is that many bytes of JSON, then
raw little-endian tensors in input order, each sized by ``parameters.binary_data_size``. Outputs asked
for with ``parameters.binary_data`` (or request ``parameters.binary_data_output``) come back the same
way, so stock ``tritonclient.http`` works with its defaults.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from dcloop import __version__
from dcloop.deploy._inputs import (
    DTYPES,
    bad,
    checked_array,
    checked_texts,
    read_body,
    split_bytes,
    utf8_texts,
)
from dcloop.deploy._runtime import OnnxModel
from dcloop.deploy._schema import InferInput, InferRequest, parse_json
from dcloop.deploy._service import ModelService

router = APIRouter(prefix="/v2")
OUTPUTS = ("logits", "probabilities")
HEADER = "Inference-Header-Content-Length"
_DECIMAL = re.compile(r"[0-9]{1,12}")
TEXT_INPUT = "text"
TRUNCATION = "texts longer than {length} tokens keep their first {length}"


def _service(request: Request) -> ModelService:
    return request.app.state.service


def _served(request: Request, name: str, version: str | None = None) -> OnnxModel:
    model = _service(request).model
    if model is None:
        raise bad("No model is loaded yet.", 503)
    if name != model.version.name:
        raise bad(f"Unknown model {name!r}. Served: {model.version.name!r}.", 404)
    if version is not None and version != str(model.version.version):
        raise bad(f"Model {name!r} version {version!r} is not loaded. Served: {model.version.version}.", 404)
    return model


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    ok = _service(request).ready
    return Response(json.dumps({"ready": ok}), status_code=200 if ok else 503, media_type="application/json")


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "dcloop", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: str | None = None) -> dict[str, Any]:
    model = _served(request, name, version)
    k = len(model.classes)
    parameters: dict[str, Any] = {"classes": ",".join(model.classes), "modality": model.modality}
    if model.text is not None:
        length = model.text.max_length
        inputs = [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}]
        parameters |= {"max_length": length, "truncation": TRUNCATION.format(length=length)}
    else:
        c, h, w = model.input_shape
        inputs = [{"name": "input", "datatype": "FP32", "shape": [-1, c, h, w]}]
        parameters["input_datatypes"] = "FP32,UINT8"
    return {
        "name": name,
        "versions": [str(model.version.version)],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": [{"name": n, "datatype": "FP32", "shape": [-1, k]} for n in OUTPUTS],
        "parameters": parameters,
    }


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: str | None = None) -> dict[str, Any]:
    _served(request, name, version)
    return {"name": name, "ready": _service(request).ready}


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    model = _served(request, name, version)
    service = _service(request)
    body = await read_body(request, request.app.state.limits.max_body_bytes)
    header, blob = _split(body, request.headers.get(HEADER))
    decode = _text_input if model.text is not None else _input_tensor
    x = decode(header.inputs[0], blob, model, request.app.state.limits.max_batch_images)
    answer = await service.infer(model, x, "infer")
    tensors = {"logits": answer.logits, "probabilities": answer.probabilities}
    response: dict[str, Any] = {"model_name": name, "model_version": str(model.version.version)}
    if header.id is not None:
        response["id"] = header.id
    response["parameters"] = {"prediction_ids": ",".join(answer.prediction_ids)}
    if answer.tokens is not None:  # a text model: how many texts were cut at max_length tokens
        response["parameters"]["truncated"] = int(answer.tokens[1].sum())
    response["outputs"], binaries = [], []
    for out_name, binary in _requested_outputs(header):
        tensor = np.ascontiguousarray(tensors[out_name], dtype=np.float32)
        entry: dict[str, Any] = {"name": out_name, "datatype": "FP32", "shape": list(tensor.shape)}
        if binary:
            raw = tensor.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            binaries.append(raw)
        else:
            entry["data"] = tensor.ravel().tolist()
        response["outputs"].append(entry)
    text = orjson.dumps(response)
    if not binaries:
        return Response(text, media_type="application/json")
    headers = {HEADER: str(len(text))}
    return Response(b"".join([text, *binaries]), media_type="application/octet-stream", headers=headers)


def _split(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes]:
    """The request header (validated) and the binary tensor data after it."""
    if header_length is None:
        json_part, blob = body, b""
    else:
        length = _DECIMAL.fullmatch(header_length)  # ASCII digits only: int() refuses "²"
        if length is None or int(header_length) > len(body):
            raise bad(
                f"{HEADER} must be an integer no larger than the body ({len(body)} bytes). "
                f"Got {header_length[:20]!r}."
            )
        json_part, blob = body[: int(header_length)], body[int(header_length) :]
    return parse_json(InferRequest, json_part, "Inference request"), blob


def _input_tensor(spec: InferInput, blob: bytes, model: OnnxModel, max_images: int) -> np.ndarray:
    c, h, w = model.input_shape
    shape = spec.shape
    if spec.name != "input" or spec.datatype == "BYTES":
        raise bad(
            f"Model {model.version.name!r} takes images: input `input`, datatype FP32 or UINT8. "
            f"Got input {spec.name[:64]!r} of {spec.datatype}.",
            422,
        )
    if shape[1:] != [c, h, w] or not 1 <= shape[0] <= max_images:
        raise bad(f"Input shape must be [N, {c}, {h}, {w}] with 1 <= N <= {max_images}. Got {shape}.")
    dtype = np.dtype(DTYPES[spec.datatype]).newbyteorder("<")
    count = shape[0] * c * h * w
    size = spec.parameters.binary_data_size if spec.parameters is not None else None
    if size is not None:
        if size != count * dtype.itemsize or len(blob) != size:
            raise bad(
                f"Binary input must be {count * dtype.itemsize} bytes (binary_data_size {size}, got {len(blob)})."
            )
        array = np.frombuffer(blob, dtype=dtype)
    else:
        array = _json_data(spec.data, spec.datatype, count)
    return checked_array(array.astype(DTYPES[spec.datatype], copy=False).reshape(shape), "input")


def _text_input(spec: InferInput, blob: bytes, model: OnnxModel, max_texts: int) -> list[str]:
    """The texts of a BYTES input shaped [N] or [N, 1]: JSON strings, or the binary extension's
    length-prefixed elements (as ``tritonclient`` sends them)."""
    if spec.name != TEXT_INPUT or spec.datatype != "BYTES":
        raise bad(
            f"Model {model.version.name!r} takes text: input `{TEXT_INPUT}`, datatype BYTES, shape [N]. "
            f"Got input {spec.name[:64]!r} of {spec.datatype}.",
            422,
        )
    shape = spec.shape
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1) or not 1 <= shape[0] <= max_texts:
        raise bad(f"Input shape must be [N] or [N, 1] with 1 <= N <= {max_texts}. Got {shape}.")
    size = spec.parameters.binary_data_size if spec.parameters is not None else None
    if size is not None:
        if len(blob) != size:
            raise bad(f"Binary input must be {size} bytes (its binary_data_size). Got {len(blob)}.")
        return checked_texts(utf8_texts(split_bytes(blob, shape[0])), "text")
    if spec.data is None:
        raise bad("Input needs `data` (a list of strings) or parameters.binary_data_size.")
    flat = [v for item in spec.data for v in (item if isinstance(item, list) else [item])]
    if len(flat) != shape[0]:
        raise bad(f"Input `data` must hold {shape[0]} strings for its shape. Got {len(flat)}.")
    return checked_texts(flat, "text")


def _json_data(data: list[Any] | None, datatype: str, count: int) -> np.ndarray:
    if data is None:
        raise bad("Input needs `data` (a list) or parameters.binary_data_size.")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(data, dtype=np.float64).ravel()
    except (ValueError, TypeError, OverflowError):
        raise bad("Input `data` must be a flat or nested list of numbers.") from None
    if array.size != count:
        raise bad(f"Input `data` must hold {count} values for its shape. Got {array.size}.")
    if datatype == "UINT8":
        if not np.all((array >= 0) & (array <= 255) & (array == np.floor(array))):
            raise bad("UINT8 input `data` must be integers 0-255.")
        return array.astype(np.uint8)
    if not np.all(np.isfinite(array)) or np.abs(array).max(initial=0.0) > np.finfo(np.float32).max:
        raise bad("FP32 input `data` must be finite numbers within float32's range.")
    return array.astype(np.float32)


def _requested_outputs(header: InferRequest) -> list[tuple[str, bool]]:
    default_binary = header.parameters is not None and header.parameters.binary_data_output
    if header.outputs is None:
        return [(name, default_binary) for name in OUTPUTS]
    chosen: list[tuple[str, bool]] = []
    for spec in header.outputs:
        binary = spec.parameters.binary_data if spec.parameters is not None else None
        chosen.append((spec.name, default_binary if binary is None else binary))
    return chosen
