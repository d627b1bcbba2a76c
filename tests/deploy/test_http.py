"""Over a real socket (uvicorn with the capped httptools protocol): error answers keep the connection,
oversized request heads get 431, and a share of the seeded fuzz runs through one keep-alive client."""

from __future__ import annotations

import http.client
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fuzzkit import Generator, Req, reproducers

from dcloop.deploy._protocol import MAX_HEADER_BYTES, MAX_HEADER_FIELDS

# Pillow warns about the damaged images sent on purpose; what matters is the answer.
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning:PIL", "ignore::DeprecationWarning:PIL", "ignore::PIL.Image.DecompressionBombWarning"
)

SOCKET_REQUESTS = 600


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _raw(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` + ``body`` on a new socket; the status, headers and body of the one answer."""
    with socket.create_connection(_address(url), timeout=30) as sock:
        sock.sendall(head + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_error_answers_keep_the_connection_open(live_server) -> None:
    """Each known bad request, then a good one, on one socket: the server never drops it silently."""
    conn = http.client.HTTPConnection(*_address(live_server), timeout=30)
    conn.connect()
    first = conn.sock
    try:
        for req in [r for r in reproducers() * 2 if r.kind != "content-length"]:  # that one: below
            headers = {k: v.encode() for k, v in req.headers}
            conn.request(req.method, req.path, body=req.body, headers=headers)
            response = conn.getresponse()
            body = response.read()
            assert 400 <= response.status < 500, (req.kind, response.status, body[:200])
            assert json.loads(body)["error"]
            assert response.getheader("connection") != "close", req.kind
            assert conn.sock is first, f"the server closed the connection after {req.kind}"
        conn.request("POST", "/predict", body=json.dumps({"pixels": [[5] * 28] * 28}).encode())
        assert conn.getresponse().status == 200 and conn.sock is first
    finally:
        conn.close()


def test_oversized_request_heads_get_431_and_the_server_carries_on(live_server) -> None:
    big = b"x" * (MAX_HEADER_BYTES + 16 * 1024)
    status, headers, body = _raw(
        live_server, b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nX-Big: " + big + b"\r\n\r\n"
    )
    assert status == 431 and headers["connection"] == "close"
    assert f"at most {MAX_HEADER_BYTES} bytes" in json.loads(body)["error"]
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADER_FIELDS + 1))
    status, headers, _ = _raw(live_server, b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert status == 431 and headers["connection"] == "close"
    status, _, _ = _raw(
        live_server, b"GET /" + b"a" * (MAX_HEADER_BYTES + 1024) + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert status == 431
    # Just under the caps, a request is served, and its body may be far larger than the header cap.
    fine = b"".join(b"X-%d: %s\r\n" % (i, b"y" * 400) for i in range(MAX_HEADER_FIELDS - 5))
    pixels = json.dumps({"pixels": [[9] * 28] * 28}).encode() + b" " * (8 * MAX_HEADER_BYTES)
    head = b"POST /predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
    status, _, body = _raw(live_server, head + fine + b"Content-Length: %d\r\n\r\n" % len(pixels), pixels)
    assert status == 200, body[:200]
    assert httpx.get(f"{live_server}/v2/health/ready").status_code == 200


def test_a_header_growing_without_end_is_cut_off(live_server) -> None:
    """A client sending one endless header: the server answers and closes instead of buffering it all."""
    closed = False
    with socket.create_connection(_address(live_server), timeout=30) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        try:
            for _ in range(256):  # up to 16 MiB, far more than the socket buffers on both ends hold
                sock.sendall(b"z" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
    assert closed
    assert httpx.get(f"{live_server}/v2/health/live").json() == {"live": True}


def test_unparseable_requests_get_a_json_400_and_connection_close(live_server) -> None:
    for head in (
        b"POST /predict HTTP/1.1\r\nHost: a\r\nContent-Length: \xc2\xb2\r\n\r\n{}",
        b"POST /predict HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"GARBAGE\r\n\r\n",
    ):
        status, headers, body = _raw(live_server, head)
        assert status == 400 and headers["connection"] == "close", head
        assert "Invalid HTTP request" in json.loads(body)["error"]


def test_seeded_share_through_one_pooled_keep_alive_client(live_server) -> None:
    """Fuzz requests from 4 threads through one pooled httpx client: no 5xx, no reset or protocol
    error (either raises here), no hang (the timeout raises)."""
    with httpx.Client(base_url=live_server, timeout=30, limits=httpx.Limits(max_connections=4)) as client:
        pid = client.post("/predict", json={"pixels": [[3] * 28] * 28}).json()["prediction_id"]
        generator = Generator(7, pid)
        requests = [generator.draw() for _ in range(SOCKET_REQUESTS)]

        def send(req: Req) -> tuple[Req, int, str]:
            headers = {k: v for k, v in req.header_dict().items() if k != "content-length"}  # httpx frames
            r = client.request(req.method, req.path, content=req.body, headers=headers)
            ok = r.status_code < 400 or "error" in r.json()
            return req, r.status_code, "" if ok else r.text[:300]

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, requests))
    bad = [(req.kind, status, text) for req, status, text in answers if status >= 500 or text]
    assert bad == []
    assert len(answers) == SOCKET_REQUESTS and any(status == 200 for _, status, _ in answers)


def test_an_oversized_body_gets_413_and_connection_close_without_being_received(live_server) -> None:
    """The server refuses from Content-Length alone and closes, instead of draining 100 GB first."""
    with socket.create_connection(_address(live_server), timeout=30) as sock:
        head = b"POST /predict HTTP/1.1\r\nHost: a\r\nContent-Type: image/png\r\nContent-Length: 100000000000\r\n\r\n"
        sock.sendall(head + b"\x89PNG" * 1000)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        assert response.status == 413 and response.getheader("connection") == "close"
        assert "at most" in json.loads(body)["error"]
        sock.settimeout(30)
        try:
            closed = sock.recv(1) == b""  # the server closed: no more answers on this connection
        except ConnectionResetError:
            closed = True  # closed with our unread body still in its buffer: a reset says the same
        assert closed


def test_a_500_keeps_the_connection_and_the_next_request_on_it_succeeds(live_server, served_ws) -> None:
    """A failure no route foresees (the feedback table vanished) is a JSON 5xx on a connection that stays:
    the store reports it as unavailable (503, retry later), anything it does not catch is a 500 with a reference."""
    import sqlite3

    conn = http.client.HTTPConnection(*_address(live_server), timeout=30)
    auth = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}
    try:
        conn.request("POST", "/predict", body=json.dumps({"pixels": [[5] * 28] * 28}).encode())
        pid = json.loads(conn.getresponse().read())["prediction_id"]
        first = conn.sock
        db = sqlite3.connect(served_ws.store_url.removeprefix("sqlite:///"))
        db.execute("ALTER TABLE feedback RENAME TO feedback_away")
        db.commit()
        try:
            conn.request(
                "POST", "/feedback", body=json.dumps({"prediction_id": pid, "label": 1}), headers=auth
            )
            response = conn.getresponse()
            body = json.loads(response.read())
        finally:
            db.execute("ALTER TABLE feedback_away RENAME TO feedback")
            db.commit()
            db.close()
        assert response.status in (500, 503) and body["error"] and "feedback_away" not in body["error"]
        if response.status == 500:
            assert "reference" in body["error"]
        assert response.getheader("connection") != "close" and conn.sock is first
        conn.request("POST", "/feedback", body=json.dumps({"prediction_id": pid, "label": 1}), headers=auth)
        assert conn.getresponse().status == 200 and conn.sock is first
    finally:
        conn.close()


def test_a_large_body_arriving_after_its_head_is_answered(live_server) -> None:
    """Body bytes are never counted as header bytes: a head, then a body over the head cap in later reads."""
    pixels = json.dumps({"pixels": [[7] * 28] * 28}).encode()
    body = pixels[:-1] + b" " * (8 * MAX_HEADER_BYTES) + b"}"  # valid JSON, padded past the cap
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    for _ in range(3):
        with socket.create_connection(_address(live_server), timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(head + body[:10])  # the head and a sliver of body: the server reads them first
            sock.sendall(body[10:])
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 200, response.read()
            assert "prediction_id" in json.loads(response.read())


def test_pipelined_requests_are_answered_in_order_on_one_socket(live_server) -> None:
    """Three requests sent in one write: three whole answers, in order, on the same connection."""
    bodies = [json.dumps({"pixels": [[v] * 28] * 28}).encode() for v in (0, 120, 255)]
    head = "POST /predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n"
    with socket.create_connection(_address(live_server), timeout=30) as sock:
        sock.sendall(b"".join(head.format(len(b)).encode() + b for b in bodies))
        answers = []
        for _ in bodies:
            response = http.client.HTTPResponse(sock)
            response.begin()
            answers.append((response.status, json.loads(response.read())))
    assert [status for status, _ in answers] == [200, 200, 200]
    ids = [answer["prediction_id"] for _, answer in answers]
    assert len(set(ids)) == 3 and ids == sorted(ids)  # time-ordered ids: answered in the order sent
