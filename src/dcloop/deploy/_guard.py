"""``ErrorGuard``: the outermost ASGI layer, so whatever escapes a route still gets a clean answer.

Routes answer bad input with a 4xx themselves; this layer is for the rest. An exception that escapes
before the answer has started becomes a JSON answer on the same connection: its own status for an
HTTP error, 422 for a validation error, otherwise a 500 logged with its traceback under a short
reference the client is given. Starlette's own last-resort handler would instead send a plain 500
and re-raise, and uvicorn then drops the keep-alive connection without saying so, failing the
client's next request too. Only an exception after the answer has started is re-raised: half an
answer can only be ended by closing the connection.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from dcloop.deploy._schema import describe

log = logging.getLogger(__name__)


class ErrorGuard:
    """Pure ASGI middleware; wrap the whole app with it (``add_middleware`` last)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracked(message: Any) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            where = f"{scope.get('method')} {scope.get('path')}"
            if isinstance(exc, ClientDisconnect):  # nobody is left to answer
                log.info("%s: the client went away before its answer", where)
                return
            if finished:  # the client has its answer; keep the connection, keep the record
                log.exception("%s failed after its answer was sent", where)
                return
            if started:
                raise
            await send_error(send, *answer_for(exc, where))


async def send_error(send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer ``{"error": detail}`` with ``status``."""
    body = orjson.dumps({"error": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def answer_for(exc: Exception, where: str) -> tuple[int, str, list[tuple[bytes, bytes]]]:
    """Status, one-line detail and extra headers for an exception no route handled."""
    if isinstance(exc, HTTPException):
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
        return exc.status_code, str(exc.detail), headers
    if isinstance(exc, ValidationError):
        return 422, describe(exc), []
    reference = uuid.uuid4().hex[:12]
    log.error("%s failed (reference %s)", where, reference, exc_info=exc)
    return 500, f"Internal server error (reference {reference}); the server log has the details.", []
