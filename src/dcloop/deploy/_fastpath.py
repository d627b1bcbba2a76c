"""``ServerApp``: the FastAPI app, whose busiest routes (``POST /predict``, OIP infer) skip FastAPI.

For a small model FastAPI's per-request layers (its body limit and telemetry wrappers, Starlette's
error middleware, the app's own middlewares, routing and dependency solving) cost more than the
inference. ``ServerApp.__call__`` answers those two routes itself, calling the same handlers, answering
their errors with the same exception handlers the app registers, and recording the same request
metrics; an exception no handler takes becomes the JSON answer ``ErrorGuard`` would give. Every other
request, and the lifespan, goes through FastAPI unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

from dcloop.deploy import _oip as oip
from dcloop.deploy._guard import answer_for, send_error
from dcloop.deploy._metrics import record_request

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Any], Awaitable[Response]]
CLIENT_GONE = 499  # the status recorded for a request whose client left before its answer


@dataclass(frozen=True)
class _Route:
    """What the request metrics read from ``scope["route"]``: the route template."""

    path: str


PREDICT = _Route("/predict")
INFER = _Route("/v2/models/{name}/infer")
INFER_VERSION = _Route("/v2/models/{name}/versions/{version}/infer")


class ServerApp(FastAPI):
    """A FastAPI app with fast routes: ``fast_routes(predict, errors)`` turns them on.

    ``predict`` answers ``POST /predict``, ``oip.infer`` the OIP infer paths; ``errors`` maps exception
    types to the app's handlers (checked in order).
    """

    _predict: Handler | None = None
    _errors: dict[type[Exception], ErrorHandler]
    _caught: tuple[type[Exception], ...] = ()

    def fast_routes(self, predict: Handler, errors: Mapping[type[Exception], ErrorHandler]) -> None:
        self._predict, self._errors, self._caught = predict, dict(errors), tuple(errors)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._predict is not None and scope["type"] == "http" and scope["method"] == "POST":
            route, name, version = _match(scope["path"])
            if route is not None:
                await self._answer(route, name, version, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _answer(
        self, route: _Route, name: str, version: str | None, scope: Any, receive: Any, send: Any
    ) -> None:
        start = time.perf_counter()
        scope["app"], scope["route"] = self, route
        if self.root_path:
            scope["root_path"] = self.root_path
        request = Request(scope, receive)
        try:
            try:
                if route is PREDICT:
                    assert self._predict is not None
                    response = await self._predict(request)
                else:
                    response = await oip.infer(request, name, version)
            except self._caught as exc:
                handler = next(h for kind, h in self._errors.items() if isinstance(exc, kind))
                response = await handler(request, exc)
        except ClientDisconnect:  # nobody is left to answer
            log.info("%s %s: the client went away before its answer", scope["method"], scope["path"])
            record_request(scope, CLIENT_GONE, time.perf_counter() - start)
            return
        except Exception as exc:
            status, detail, headers = answer_for(exc, f"{scope['method']} {scope['path']}")
            await send_error(send, status, detail, headers)
            record_request(scope, status, time.perf_counter() - start)
            return
        await response(scope, receive, send)
        record_request(scope, response.status_code, time.perf_counter() - start)


def _match(path: str) -> tuple[_Route | None, str, str | None]:
    """The fast route of ``path`` with its model name and version, or None."""
    if path == "/predict":
        return PREDICT, "", None
    parts = path.split("/")  # "", "v2", "models", name, ["versions", version,] "infer"
    if len(parts) < 5 or parts[1] != "v2" or parts[2] != "models" or parts[-1] != "infer" or not parts[3]:
        return None, "", None
    if len(parts) == 5:
        return INFER, parts[3], None
    if len(parts) == 7 and parts[4] == "versions" and parts[5]:
        return INFER_VERSION, parts[3], parts[5]
    return None, "", None
