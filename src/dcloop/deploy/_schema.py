"""The request bodies of every route as validated models: the one place that says what a field may be.

Each route parses its body once, through its model (``parse``), so a field that does not fit is a 422
naming the field, what it must be and what was sent; nothing unchecked reaches the model, the store
or the database driver. The bounds here are those of the narrowest store backend (PostgreSQL), so a
value that passes is one every backend can take.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import HTTPException
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

MAX_VERSION = 2**31 - 1  # PostgreSQL INTEGER, the model_versions.version column
# name@alias or name@N (ASCII digits only: "²".isdigit() is true, int("²") is not).
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
_REF = re.compile(rf"({_NAME})(?:@(?:([A-Za-z][A-Za-z0-9_-]{{0,63}})|([0-9]{{1,10}})))?")
_ID = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII: no NUL (PostgreSQL text refuses it), no spaces
_ASCII_INDEX = re.compile(r"-?[0-9]+")
Model = TypeVar("Model", bound=BaseModel)


def check_model_ref(value: str) -> str:
    """``value`` if it is name, name@alias or name@N with N a version every store can hold, else ValueError."""
    match = _REF.fullmatch(value)
    if match is None:
        raise ValueError("must be name@alias or name@version (letters, digits, '.', '_', '-')")
    if match[3] is not None and not 1 <= int(match[3]) <= MAX_VERSION:
        raise ValueError(f"version must be 1 to {MAX_VERSION}")
    return value


def _prediction_id(value: str) -> str:
    if _ID.fullmatch(value) is None:
        raise ValueError("must be a prediction id: 1-64 printable ASCII characters")
    return value


def _label(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value or len(value) > 200 or any(ord(ch) < 32 for ch in value):
        raise ValueError("must be a class name (1-200 printable characters) or a class index")
    digits = value.strip().lstrip("-")
    if digits.isdigit() and _ASCII_INDEX.fullmatch(value.strip()) is None:  # "²", "٣": int() refuses them
        raise ValueError("must be a class name or a class index written with ASCII digits")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feedback(_Body):
    """``POST /feedback``: the true label of a prediction the server answered."""

    prediction_id: Annotated[StrictStr, AfterValidator(_prediction_id)]
    label: Annotated[int | str, PlainValidator(_label)]


class ModelSwitch(_Body):
    """``POST /admin/model``: the model reference to serve from now on."""

    model: Annotated[StrictStr, AfterValidator(check_model_ref)]


class TextBody(_Body):
    """``POST /predict`` to a text model as JSON: one text, checked by ``checked_texts``."""

    text: Any


class PixelsBody(_Body):
    """``POST /predict`` as JSON: pixels checked against the model's shape by ``pixels_from_json``."""

    pixels: Any


class _Protocol(BaseModel):
    # The Open Inference Protocol lets clients add parameters dcloop does not use: ignore them.
    model_config = ConfigDict(extra="ignore", frozen=True)


class TensorParameters(_Protocol):
    binary_data_size: Annotated[StrictInt, Field(ge=0)] | None = None


class InferInput(_Protocol):
    """One input tensor: ``input`` (FP32/UINT8, [N, C, H, W]) of an image model, ``text`` (BYTES, [N]
    or [N, 1]) of a text model; the served model's decoder checks which."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    datatype: Literal["FP32", "UINT8", "BYTES"]
    shape: Annotated[list[StrictInt], Field(min_length=1, max_length=4)]
    data: list[Any] | None = None
    parameters: TensorParameters | None = None


class OutputParameters(_Protocol):
    binary_data: StrictBool | None = None


class RequestedOutput(_Protocol):
    name: Literal["logits", "probabilities"]
    parameters: OutputParameters | None = None


class RequestParameters(_Protocol):
    binary_data_output: StrictBool = False


class InferRequest(_Protocol):
    """The OIP v2 inference request header (the JSON part of a binary request)."""

    id: StrictStr | None = None
    parameters: RequestParameters | None = None
    inputs: Annotated[list[InferInput], Field(min_length=1, max_length=1)]
    outputs: list[RequestedOutput] | None = None


def parse(model: type[Model], value: Any, what: str = "Request body") -> Model:
    """``value`` (parsed JSON) as ``model``, or a 422 naming every field that does not fit."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise HTTPException(422, describe(exc, what)) from None


def parse_json(model: type[Model], body: bytes, what: str = "Request body") -> Model:
    """``body`` (JSON text) as ``model``: 400 if it is not JSON, 422 if a field does not fit."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"{what} is not valid JSON: {exc}.") from None
    return parse(model, value, what)


def describe(exc: ValidationError, what: str = "Request body") -> str:
    """One line for every problem (up to three): field, what it must be, what was sent."""
    problems = [_problem(error) for error in exc.errors(include_url=False)]
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"{what}: {'; '.join(problems[:3])}{more}."


def _problem(error: Any) -> str:
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
    field = f"`{field}`" if field else "the body"
    if error["type"] == "missing":
        return f"{field} is required"
    if error["type"] == "extra_forbidden":
        return f"{field} is not a field of it"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{field} {message}, got {_short(error.get('input'))}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
