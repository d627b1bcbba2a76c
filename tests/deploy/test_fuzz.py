"""Property: no request makes the server answer 5xx, hang or drop the connection.

The bulk run sends ``DCLOOP_FUZZ_REQUESTS`` (default 10,000) seeded requests (``DCLOOP_FUZZ_SEED``)
straight into the ASGI app in-process (real ONNX Runtime, real SQLite store): raw bytes, mutated
JSON and OIP bodies, abused headers, and mutated images of every format Pillow saves. A hypothesis
part draws structured bodies; ``test_http.py`` repeats a share over a real socket with keep-alive.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from fuzzkit import AUTH, Generator, Req, reproducers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcloop.deploy import create_app

# Pillow warns about the damaged images sent on purpose; what matters is the answer.
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning:PIL", "ignore::DeprecationWarning:PIL", "ignore::PIL.Image.DecompressionBombWarning"
)

SEED = int(os.environ.get("DCLOOP_FUZZ_SEED", "20261201"))
REQUESTS = int(os.environ.get("DCLOOP_FUZZ_REQUESTS", "10000"))
HANG_S = 30.0  # one request longer than this is a hang (the machine is shared and slow)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
TOKENS = st.sampled_from(
    [None, "Bearer s3cret", "Bearer wrong", "s3cret", "Bearer ", "Basic czNjcmV0", b"Bearer \xe9\xff"]
)


@pytest.fixture
def client(served_ws):
    app = create_app(served_ws, "pets@champion", token="s3cret", max_body_bytes=64_000, max_image_pixels=4096)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def asgi_scope(req: Req) -> dict:
    """The ASGI scope uvicorn would build for ``req``."""
    headers = [(k.lower().encode(), v.encode()) for k, v in req.headers]
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(req.body)).encode()))
    path, _, query = req.path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def asgi_request(app, req: Req) -> tuple[int, dict[str, str], bytes]:
    """``req`` through the ASGI app as uvicorn would deliver it; raises if the app raises."""
    scope = asgi_scope(req)
    chunks = [req.body[i : i + 16384] for i in range(0, len(req.body), 16384)] or [b""]
    sent: list[dict] = []

    async def receive() -> dict:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.Event().wait()  # like a live connection: nothing more until the answer is out
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), HANG_S)
    start = next(m for m in sent if m["type"] == "http.response.start")
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert bodies and not bodies[-1].get("more_body", False), f"answer to {req.kind} never finished"
    answer = {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]}
    return start["status"], answer, b"".join(m.get("body", b"") for m in bodies)


async def fire(
    app, requests: list[Req], concurrency: int = 8
) -> tuple[list[tuple[Req, int, str]], Counter[int]]:
    """Every request, ``concurrency`` at a time: (request, status, problem) for each bad outcome, and
    the count of each status."""
    problems: list[tuple[Req, int, str]] = []
    statuses: Counter[int] = Counter()

    async def one(req: Req) -> None:
        try:
            status, _, body = await asgi_request(app, req)
        except TimeoutError:
            problems.append((req, 0, "hang"))
            return
        except Exception as exc:  # escaping the app: uvicorn would drop the connection
            problems.append((req, 0, f"raised {type(exc).__name__}: {exc}"))
            return
        statuses[status] += 1
        if status >= 500:
            problems.append((req, status, body[:300].decode("utf-8", "replace")))
        elif status >= 400 and "error" not in json.loads(body):
            problems.append((req, status, "no error field"))
        elif req.valid and status != 200:
            problems.append((req, status, f"valid request refused: {body[:200]!r}"))

    for start in range(0, len(requests), concurrency):
        await asyncio.gather(*(one(r) for r in requests[start : start + concurrency]))
    return problems, statuses


def _report(problems: list[tuple[Req, int, str]]) -> str:
    lines = [f"{len(problems)} bad answers; first ones:"]
    for req, status, what in problems[:8]:
        headers = [(k, v[:40]) for k, v in req.headers]
        lines.append(
            f"  {req.kind} {req.method} {req.path} {headers} {req.body[:80]!r} -> {status} {what[:200]}"
        )
    return "\n".join(lines)


def test_seeded_requests_never_5xx_hang_or_drop(client) -> None:
    pid = client.post("/predict", json={"pixels": [[3] * 28] * 28}).json()["prediction_id"]
    generator = Generator(SEED, pid)
    requests = reproducers() + [generator.draw() for _ in range(REQUESTS)]
    problems, statuses = client.portal.call(fire, client.app, requests)
    assert not problems, _report(problems)
    assert sum(statuses.values()) == len(requests) > REQUESTS  # 10,000 and the reproducers by default
    assert statuses[200] >= REQUESTS // 40  # the valid share got through
    assert sum(n for s, n in statuses.items() if s >= 500) == 0
    kinds = Counter(r.kind.split()[0] for r in requests)
    assert kinds["image"] >= REQUESTS // 5 and kinds["oip"] + kinds["json"] >= REQUESTS // 5


@FUZZ
@given(
    body=st.binary(max_size=2048) | JSON.map(lambda v: json.dumps(v).encode()),
    path=st.sampled_from(
        ["/predict", "/feedback", "/admin/model", "/v2/models/pets/infer", "/v2/models/x/infer"]
    ),
    content_type=st.sampled_from(
        ["application/json", "image/png", "multipart/form-data; boundary=zz", "text/plain"]
    ),
    token=TOKENS,
)
def test_random_bodies_never_5xx(client, body, path, content_type, token) -> None:
    headers: dict[str, str | bytes] = {"content-type": content_type}
    if token is not None:
        headers["Authorization"] = token
    r = client.post(path, content=body, headers=headers)
    assert r.status_code < 500, r.text
    assert "error" in r.json() or r.status_code == 200


@FUZZ
@given(
    datatype=JSON | st.sampled_from(["FP32", "UINT8", "INT64"]),
    shape=JSON | st.lists(st.integers(-2, 40), max_size=5),
    data=JSON | st.lists(st.floats(), max_size=30),
    outputs=JSON,
    header_length=st.none() | st.text(max_size=6) | st.integers(-5, 3000).map(str),
)
def test_malformed_oip_fields_never_5xx(client, datatype, shape, data, outputs, header_length) -> None:
    spec = {"name": "input", "datatype": datatype, "shape": shape, "data": data}
    body = json.dumps({"inputs": [spec], "outputs": outputs}).encode()
    headers = {} if header_length is None else {"Inference-Header-Content-Length": header_length.encode()}
    r = client.post("/v2/models/pets/infer", content=body, headers=headers)
    assert 400 <= r.status_code < 500 and "error" in r.json(), r.text


@FUZZ
@given(
    prediction_id=JSON | st.text(max_size=70),
    label=JSON | st.text(max_size=5),
    model=JSON | st.text(max_size=30),
)
def test_malformed_write_fields_never_5xx(client, prediction_id, label, model) -> None:
    headers = dict([AUTH])
    feedback = json.dumps({"prediction_id": prediction_id, "label": label})  # NaN/Infinity tokens too
    r = client.post("/feedback", content=feedback, headers=headers)
    assert r.status_code in (400, 404, 422), r.text
    r = client.post("/admin/model", content=json.dumps({"model": model}), headers=headers)
    assert r.status_code in (200, 400, 404, 409, 422), r.text


def test_oversized_and_chunked_bodies(client) -> None:
    r = client.post("/predict", content=b"0" * 70_000)
    assert r.status_code == 413

    def chunks():
        for _ in range(100):
            yield b"0" * 1000

    assert client.post("/v2/models/pets/infer", content=chunks()).status_code == 413
    assert client.post("/predict", content=b"{}", headers={"content-length": "abc"}).status_code in (400, 413)


def test_a_client_leaving_before_its_body_is_read_raises_nothing(client) -> None:
    """uvicorn reports the departure as ``http.disconnect``; the app must not raise or answer 500."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    for path in ("/predict", "/v2/models/pets/infer", "/feedback"):
        req = Req("POST", path, b"{}" * 10, [AUTH])
        client.portal.call(client.app, asgi_scope(req), receive, send)
    assert [m for m in sent if m["type"] == "http.response.start" and m["status"] >= 500] == []


# -- a text model ------------------------------------------------------------------------------------

TEXT_REQUESTS = int(os.environ.get("DCLOOP_FUZZ_TEXT_REQUESTS", "800"))


@pytest.fixture(scope="module")
def text_client(tmp_path_factory):
    from textkit import TEXT_CLASSES, text_model_folder

    from dcloop.deploy import promote, register_model_version
    from dcloop.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("fuzz-text") / "ws")
    onnx = text_model_folder(tmp_path_factory.mktemp("fuzz-text-model") / "bundle")
    register_model_version(ws, onnx, name="reviews", classes=TEXT_CLASSES)
    promote(ws, "reviews", version=1)
    app = create_app(ws, "reviews@champion", token="s3cret", max_body_bytes=64_000)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def test_seeded_text_requests_never_5xx_hang_or_drop(text_client) -> None:
    from fuzzkit import TextGenerator

    generator = TextGenerator(SEED)
    requests = [generator.draw() for _ in range(TEXT_REQUESTS)]
    problems, statuses = text_client.portal.call(fire, text_client.app, requests)
    assert not problems, _report(problems)
    assert statuses[200] >= TEXT_REQUESTS // 10 and statuses[400] and statuses[422]
    kinds = Counter(r.kind for r in requests)
    assert kinds["text bytes"] >= TEXT_REQUESTS // 4


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_is_answered_or_refused_as_empty(text_client, text) -> None:
    r = text_client.post("/predict", json={"text": text})
    if text.strip():
        assert r.status_code == 200 and r.json()["tokens"] >= 2, r.text
    else:
        assert r.status_code == 422 and "empty or only whitespace" in r.json()["error"]


@FUZZ
@given(elements=st.lists(st.binary(max_size=40), min_size=1, max_size=4), noise=st.binary(max_size=8))
def test_any_bytes_elements_are_200_400_or_422(text_client, elements, noise) -> None:
    from fuzzkit import oip_text_binary

    body, length = oip_text_binary(elements)
    for payload in (body, body + noise, body[: len(body) - len(noise)]):
        headers = {"Inference-Header-Content-Length": length}
        r = text_client.post("/v2/models/reviews/infer", content=payload, headers=headers)
        assert r.status_code in (200, 400, 422), r.text
