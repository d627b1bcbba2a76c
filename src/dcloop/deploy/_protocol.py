"""The HTTP/1.1 protocol the server runs: uvicorn's httptools parser with a cap on request headers.

httptools gathers a request line and headers of any size before the app sees them, so without a cap
a few clients sending megabytes of header grow the server by that much each. The cap counts the
bytes that arrive before a request's headers are complete (and the number of header fields); past it
the client gets ``431`` with ``Connection: close`` and nothing more is parsed. A request the parser
cannot read gets a JSON ``400``, also with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024  # request line + headers; browsers and proxies stay far below it
MAX_HEADER_FIELDS = 100


class _HeadTooLarge(Exception):
    """Raised inside the parser callback; httptools wraps it, ``send_400_response`` answers 431."""


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering 431 to a request whose headers exceed the caps."""

    max_header_bytes = MAX_HEADER_BYTES
    max_header_fields = MAX_HEADER_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # bytes that arrive now belong to a request line or headers
        self._head_bytes = 0  # request line and header fields parsed so far (exact)
        self._streamed = 0  # bytes received while a head stays incomplete (what the parser buffers)
        self._fields = 0
        self._began = False  # a request's head began within the chunk being parsed
        self._too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _WriteOnce(transport, self.loop)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._began = False
        super().data_received(data)
        # Still inside a request's head after this chunk: count all of it, unless the head began
        # within it (then at most one read's worth goes uncounted, which bounds memory all the same).
        if self._in_headers and not self._began and not self.transport.is_closing():
            self._streamed += len(data)
            if self._streamed > self.max_header_bytes:
                self._too_large = True
                self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._began = True, True
        self._head_bytes = self._streamed = self._fields = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4, 1)  # 4: ": " and CRLF
        super().on_header(name, value)

    def _count(self, size: int, fields: int) -> None:
        self._head_bytes += size
        self._fields += fields
        if self._head_bytes > self.max_header_bytes or self._fields > self.max_header_fields:
            self._too_large = True
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What comes next on this connection is the next request's head. The chunk being parsed ended
        # a body, and body bytes are not head bytes: leave it uncounted, as a chunk a head began in.
        self._in_headers, self._began = True, True

    def send_400_response(self, msg: str) -> None:
        """A JSON answer, then close: the request's framing is unknown, so nothing after it can be read."""
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:  # an answer is being written
            self.transport.close()
            return
        if self._too_large:
            status = b"431 Request Header Fields Too Large"
            error = (
                f"Request headers must be at most {self.max_header_bytes} bytes "
                f"and {self.max_header_fields} fields."
            )
        else:
            status, error = b"400 Bad Request", f"Invalid HTTP request: {msg or 'it cannot be parsed'}"
        body = orjson.dumps({"error": error})
        head = (
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()


class _WriteOnce:
    """A transport whose writes within one pass of the event loop go out together, in one ``send``.

    uvicorn writes an answer's status line and headers, then its body: two writes, two TCP segments
    over a socket with TCP_NODELAY, and two wake-ups of the client. Joined, an answer costs one
    system call on each side. ``close`` sends what is pending first; writes pending when the connection
    is lost are dropped; anything else is the transport's.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        # A connection lost before the pass ended takes no more writes (uvloop raises on a closed one);
        # a close of ours has sent what was pending already.
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
