"""The HTTP server: built by ``create_app`` with explicit arguments; the model loads in ``lifespan``.

Routes: Open Inference Protocol v2 (``oip.py``), ``POST /predict`` (image upload or JSON pixels; for a
text model JSON ``{"text": ...}`` or a text/plain body),
``POST /feedback`` and ``POST /admin/model`` (token required), ``GET /metrics`` (Prometheus).
Bad input is a 4xx ``{"error": "..."}``; a full queue is 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dcloop.deploy import _oip as oip
from dcloop.deploy._batcher import QueueFull
from dcloop.deploy._fastpath import ErrorHandler, ServerApp
from dcloop.deploy._guard import ErrorGuard
from dcloop.deploy._inputs import bad, checked_texts, decode_image, pixels_from_json, read_body
from dcloop.deploy._metrics import CONTENT_TYPE, MeasureRequests
from dcloop.deploy._schema import Feedback, ModelSwitch, PixelsBody, TextBody, parse, parse_json
from dcloop.deploy._service import Limits, ModelService, read_served, write_served
from dcloop.errors import ConfigError, DataError, DcloopError, NotFoundError
from dcloop.store.predictions import add_labels
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
SWITCH_CHECK_S = 0.2  # how often each worker of a --workers server checks for another's model switch
SWITCH_FILE = "served-model.json"  # in the workers' shared folder: the version /admin/model last chose
WORKER_FILE = "worker-{pid}.json"  # there too, one per worker: the version it serves
SWITCH_WAIT_S = 30.0  # longest /admin/model waits for the other workers to serve the version it chose


def create_app(
    workspace: Workspace,
    model_ref: str,
    *,
    max_batch_size: int = 32,
    max_queue_delay_ms: float = 0.0,
    max_queue: int = 512,
    token: str | None = None,
    max_body_bytes: int = 8 * 1024 * 1024,
    max_image_pixels: int = 16_000_000,
    threads: int = 1,
    store_inputs: bool = True,
    log_predictions: bool = True,
    follow_champion_s: float = 0.0,
    retention_days: float | None = None,
    max_input_mb: float | None = None,
    prediction_days: float | None = None,
    max_predictions_mb: float | None = None,
    retention_every_s: float = 300.0,
    shared_dir: Path | None = None,
) -> FastAPI:
    """A FastAPI app serving ``model_ref`` (name@alias or name@version) from ``workspace``.

    ``token`` guards the write and admin endpoints (None: they refuse every request). ``shared_dir``
    is the folder the workers of one server share: ``POST /admin/model`` on any of them writes the
    version it switched to there, and every worker follows it; their prediction logs take turns at
    the store through a lock file in it.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = ModelService(
            workspace,
            model_ref,
            max_batch_size=max_batch_size,
            max_queue_delay_ms=max_queue_delay_ms,
            max_queue=max_queue,
            threads=threads,
            commit_lock=None if shared_dir is None else shared_dir / "prediction-log.lock",
            served_file=None if shared_dir is None else shared_dir / WORKER_FILE.format(pid=os.getpid()),
            store_inputs=store_inputs,
            log_predictions=log_predictions,
        )
        await service.start()
        # Everything loaded so far lives as long as the server: keep it out of the cyclic collector,
        # whose full passes over the imported libraries otherwise stall every request for ~50 ms.
        gc.freeze()
        app.state.service = service
        tasks = []
        if follow_champion_s > 0:
            tasks.append(asyncio.create_task(service.follow_champion(follow_champion_s)))
        if shared_dir is not None:
            tasks.append(
                asyncio.create_task(service.follow_switches(shared_dir / SWITCH_FILE, SWITCH_CHECK_S))
            )
        bounds = {
            "input_days": retention_days if store_inputs else None,
            "max_input_mb": max_input_mb if store_inputs else None,
            "prediction_days": prediction_days,
            "max_predictions_mb": max_predictions_mb,
        }
        if log_predictions and any(v is not None for v in bounds.values()):
            tasks.append(asyncio.create_task(service.enforce_retention(retention_every_s, **bounds)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await service.stop()
            if service.served_file is not None:
                service.served_file.unlink(missing_ok=True)

    app = ServerApp(title="dcloop", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token, app.state.shared_dir = token, shared_dir
    app.state.limits = Limits(max_body_bytes, max_image_pixels, max_batch_images=max(max_batch_size, 1024))
    _add_routes(app)
    app.include_router(oip.router)
    _add_error_handlers(app)
    app.fast_routes(_predict, ERROR_HANDLERS)  # POST /predict and OIP infer, answered before FastAPI's layers
    app.add_middleware(MeasureRequests)
    app.add_middleware(ErrorGuard)  # outermost: even the layers above the routes answer cleanly
    return app


def _service(request: Request) -> ModelService:
    return request.app.state.service


def _require_token(request: Request) -> None:
    expected: str | None = request.app.state.token
    header = request.headers.get("authorization")
    if header is None:
        raise bad("This endpoint needs `Authorization: Bearer <token>`.", 401)
    scheme, _, given = header.partition(" ")
    if (
        expected is None
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise bad("The token is not valid for this server.", 403)


async def _body(request: Request) -> bytes:
    return await read_body(request, request.app.state.limits.max_body_bytes)


def _add_routes(app: FastAPI) -> None:
    app.add_api_route("/predict", _predict, methods=["POST"])

    @app.post("/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        _require_token(request)
        item = parse_json(Feedback, await _body(request), "Feedback")
        try:
            await asyncio.to_thread(
                add_labels, _service(request).ws.store, [(item.prediction_id, item.label)], "api"
            )
        except NotFoundError as exc:
            raise bad(str(exc), 404) from None
        except DataError as exc:
            raise bad(str(exc), 422) from None
        return {"prediction_id": item.prediction_id, "stored": True}

    @app.post("/admin/model")
    async def switch_model(request: Request) -> dict[str, Any]:
        _require_token(request)
        item = parse_json(ModelSwitch, await _body(request), "Model switch")
        try:
            model = await _service(request).switch(item.model, reason="admin")
        except NotFoundError as exc:
            raise bad(str(exc), 404) from None
        except DcloopError as exc:
            raise bad(str(exc), 409) from None
        answer: dict[str, Any] = {"model_version": model.version.ref, "sha256": model.version.sha256}
        shared: Path | None = request.app.state.shared_dir
        if shared is not None:  # the other workers of this server follow within SWITCH_CHECK_S
            await asyncio.to_thread(write_served, shared / SWITCH_FILE, model.version.ref)
            # answer once every worker serves it, as one process would: a request sent after this
            # answer gets the new version whichever worker takes it
            behind = await _every_worker_serves(shared, model.version.ref, SWITCH_WAIT_S)
            if behind:
                log.warning("workers %s do not serve %s yet", behind, model.version.ref)
                answer["workers_behind"] = behind
        return answer

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(_service(request).metrics.render(), media_type=CONTENT_TYPE)


async def _every_worker_serves(shared: Path, ref: str, wait_s: float) -> list[int]:
    """Wait up to ``wait_s`` for every live worker of this server to serve ``ref``; the pids of those
    that still do not."""
    deadline = time.monotonic() + wait_s
    while True:
        behind = await asyncio.to_thread(_workers_behind, shared, ref)
        if not behind or time.monotonic() >= deadline:
            return behind
        await asyncio.sleep(SWITCH_CHECK_S / 4)


def _workers_behind(shared: Path, ref: str) -> list[int]:
    """The live workers whose file in ``shared`` names another version than ``ref``."""
    behind = []
    for path in shared.glob(WORKER_FILE.format(pid="*")):
        number = path.stem.removeprefix("worker-")
        if not number.isdigit():
            continue
        pid = int(number)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:  # a worker that died (uvicorn starts another, with its own file)
            continue
        except PermissionError:
            pass
        try:
            served = read_served(path)
        except (OSError, ValueError, KeyError):  # unreadable: not known to serve it
            served = None
        if served != ref:
            behind.append(pid)
    return sorted(behind)


async def _predict(request: Request) -> Response:
    service = _service(request)
    model = service.model
    if model is None:
        raise bad("No model is loaded yet.", 503)
    if model.text is not None:
        answer = await service.infer(model, [await _predict_text(request)], "predict")
    else:
        pixels = await _predict_input(request, model.input_shape)
        answer = await service.infer(model, pixels[None], "predict")
    probs = answer.probabilities[0]
    index = int(np.argmax(probs))
    classes = model.classes
    content = {
        "prediction_id": answer.prediction_ids[0],
        "label": classes[index],
        "class_index": index,
        "probabilities": dict(zip(classes, probs.tolist(), strict=True)),
        "model_version": model.version.ref,
        "latency_ms": round(answer.latency_ms, 3),
    }
    if answer.tokens is not None and model.text is not None:  # say what the model read of the text
        lengths, truncated = answer.tokens
        content |= {
            "tokens": int(lengths[0]),
            "truncated": bool(truncated[0]),
            "max_length": model.text.max_length,
        }
    return Response(orjson.dumps(content), media_type="application/json")


async def _predict_text(request: Request) -> str:
    """The text of a ``/predict`` to a text model: JSON ``{"text": "..."}`` or a text/plain UTF-8 body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, request.app.state.limits.max_body_bytes)
    if kind == "text/plain":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad(f"A text/plain body must be UTF-8: {exc.reason} at byte {exc.start}.") from None
        return checked_texts([text], "text")[0]
    try:
        item = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad(f'Request body must be JSON {{"text": "..."}} or a text/plain body: {exc}.') from None
    return checked_texts([parse(TextBody, item, 'JSON body {"text": "..."}').text], "text")[0]


async def _predict_input(request: Request, shape: tuple[int, int, int]) -> np.ndarray:
    limits = request.app.state.limits
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, limits.max_body_bytes)
    if kind == "multipart/form-data":
        return await _decoded(await _uploaded_file(request, body), shape, limits.max_image_pixels)
    if kind.startswith("image/") or kind == "application/octet-stream":
        return await _decoded(body, shape, limits.max_image_pixels)
    try:
        item = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if kind.endswith("json") or body.lstrip()[:1] in (b"{", b"["):  # meant as JSON: say what is wrong
            raise bad(f"Request body is not valid JSON: {exc}.") from None
        raise bad(
            'Send an image (multipart `file` or image/* body) or JSON {"pixels": [[...]]}.', 415
        ) from None
    return pixels_from_json(parse(PixelsBody, item, 'JSON body {"pixels": [[...]]}').pixels, shape)


_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")  # a Python object's repr names a memory address


async def _decoded(data: bytes, shape: tuple[int, int, int], max_pixels: int) -> np.ndarray:
    """``decode_image`` in a worker thread; whatever a decoder raises, the upload is at fault: 4xx."""
    try:
        return await asyncio.to_thread(decode_image, data, shape, max_pixels)
    except StarletteHTTPException as exc:
        exc.detail = _ADDRESS.sub("the upload", str(exc.detail))
        raise
    except MemoryError:
        raise bad("Image is too large to decode.", 413) from None
    except Exception as exc:  # decoders of rare formats raise anything (NotImplementedError, TypeError)
        log.info("image decoder raised %s: %s", type(exc).__name__, exc)
        detail = _ADDRESS.sub("the upload", f"{type(exc).__name__}: {exc}")[:200]
        raise bad(f"Image cannot be decoded: {detail}") from None


async def _uploaded_file(request: Request, body: bytes) -> bytes:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except (ValueError, KeyError, AssertionError, StarletteHTTPException) as exc:
        raise bad(f"Multipart body cannot be parsed: {getattr(exc, 'detail', exc)}") from None
    files = [v for v in form.values() if not isinstance(v, str)]
    if not files:
        raise bad("Multipart body must carry one image file (field `file`).", 422)
    return await files[0].read()


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": f"Invalid request: {exc.errors()[:1]}"}, status_code=422)


async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
    return JSONResponse(
        {"error": "Server is busy: queue full."}, status_code=503, headers={"Retry-After": "1"}
    )


async def dcloop_error(request: Request, exc: DcloopError) -> JSONResponse:
    """A named thing missing is 404, bad data 422; anything else (the store is down) 503, retry later."""
    if isinstance(exc, NotFoundError | DataError | ConfigError):
        return JSONResponse({"error": str(exc)}, status_code=404 if isinstance(exc, NotFoundError) else 422)
    log.error("request failed: %s", exc)
    return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})


ERROR_HANDLERS: dict[type[Exception], ErrorHandler] = {
    StarletteHTTPException: http_error,
    QueueFull: queue_full,
    DcloopError: dcloop_error,
}


def _add_error_handlers(app: FastAPI) -> None:
    for kind, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(kind, handler)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
