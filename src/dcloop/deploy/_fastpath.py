"""``FastPaths``: the busiest routes, ``POST /predict`` and OIP infer, dispatched without FastAPI.

For a small model FastAPI's per-request routing, dependency solving and exception middleware cost
more than the inference. This pure ASGI middleware calls the same handlers and answers errors with
the same exception handlers the app registers; every other request goes through FastAPI unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from dcloop.deploy import _oip as oip

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Any], Awaitable[Response]]


@dataclass(frozen=True)
class _Route:
    """What the request metrics read from ``scope["route"]``: the route template."""

    path: str


PREDICT = _Route("/predict")
INFER = _Route("/v2/models/{name}/infer")
INFER_VERSION = _Route("/v2/models/{name}/versions/{version}/infer")


class FastPaths:
    """Pure ASGI middleware: ``predict`` answers ``POST /predict``, ``oip.infer`` the OIP infer paths.

    ``errors`` maps exception types to the app's handlers (checked in order); any other exception
    propagates as it would from a route.
    """

    def __init__(self, app: Any, predict: Handler, errors: Mapping[type[Exception], ErrorHandler]) -> None:
        self.app, self.predict, self.errors = app, predict, dict(errors)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        route, name, version = _match(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive)
        try:
            if route is PREDICT:
                response = await self.predict(request)
            else:
                response = await oip.infer(request, name, version)
        except tuple(self.errors) as exc:
            handler = next(h for kind, h in self.errors.items() if isinstance(exc, kind))
            response = await handler(request, exc)
        await response(scope, receive, send)


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
