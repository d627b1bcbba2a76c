"""The server's transport wrapper: writes made in one pass of the event loop leave in one send."""

from __future__ import annotations

import asyncio
from typing import Any

from dcloop.deploy._protocol import _WriteOnce


class _Recording(asyncio.Transport):
    """What reached the socket: each ``write`` call, and when ``close`` came."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Any] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.sent.append("close")
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_an_answer_written_in_pieces_leaves_as_one_send_in_order() -> None:
    async def main() -> list[Any]:
        inner = _Recording()
        transport = _WriteOnce(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert inner.sent == []  # nothing before the loop's pass ends
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return inner.sent

    assert asyncio.run(main()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"next"]


def test_close_sends_what_is_pending_first_and_the_rest_is_the_transport() -> None:
    async def main() -> tuple[list[Any], Any, bool]:
        inner = _Recording()
        transport = _WriteOnce(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
        transport.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
        return inner.sent, transport.get_extra_info("peername"), transport.is_closing()

    sent, peer, closing = asyncio.run(main())
    assert sent == [b"HTTP/1.1 413 Payload Too Large\r\n\r\n", "close"]
    assert peer == ("127.0.0.1", 1) and closing


def test_what_is_pending_when_the_connection_is_lost_is_dropped_not_raised() -> None:
    async def main() -> list[Any]:
        inner = _Recording()
        transport = _WriteOnce(inner, asyncio.get_running_loop())
        transport.write(b"an answer to a client that has gone")
        inner.closed = True  # the peer reset the connection before the pass ended
        await asyncio.sleep(0)
        return inner.sent

    assert asyncio.run(main()) == []
