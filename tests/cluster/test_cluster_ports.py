"""The local head's port: a taken one is refused in one line, and the default steps past a taken 6379."""

from __future__ import annotations

import socket

import pytest

from dcloop.cluster._local import LOOPBACK, head_port
from dcloop.errors import ClusterError


def _listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen()
    return sock


def test_a_taken_port_is_refused_naming_the_flag() -> None:
    with _listening() as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ClusterError, match=rf"Port {port} or {port + 1} .* in use.*--port"):
            head_port(port)


def test_the_default_port_pair_is_free_to_bind() -> None:
    port = head_port(None)
    assert 6379 <= port < 6579
    for p in (port, port + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, p))  # raises if the chosen pair was not free
