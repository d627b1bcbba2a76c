"""Property: no malformed request makes the server answer 5xx (in-process, real ONNX Runtime)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcloop.deploy import create_app

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
SHAPES = st.one_of(
    st.just([1, 1, 28, 28]),
    st.lists(st.integers(-2, 40), max_size=5),
    st.lists(st.sampled_from([1, 28, "28", None, 2.5]), min_size=4, max_size=4),
    JSON,
)


@pytest.fixture
def client(served_ws):
    app = create_app(served_ws, "pets@champion", token="s3cret", max_body_bytes=64_000, max_image_pixels=4096)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def _headers(token: str | bytes | None, extra: dict[str, str]) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = dict(extra)
    if token is not None:
        headers["Authorization"] = token
    return headers


@st.composite
def oip_requests(draw):
    datatype = draw(st.sampled_from(["FP32", "UINT8", "INT64", "BYTES", 7, None]))
    shape = draw(SHAPES)
    spec: dict = {"name": draw(st.sampled_from(["input", "x", None])), "datatype": datatype, "shape": shape}
    binary = draw(st.booleans())
    payload = b""
    if binary:
        size = draw(st.integers(0, 6000))
        spec["parameters"] = {"binary_data_size": draw(st.sampled_from([size, size + 1, "big", -1]))}
        payload = draw(st.binary(min_size=0, max_size=64)) * (size // 64 + 1)
        payload = payload[:size]
    else:
        spec["data"] = draw(st.one_of(JSON, st.lists(st.floats(), max_size=30), st.just([0.5] * 784)))
    header = {"inputs": draw(st.sampled_from([[spec], [spec, spec], [], "x"]))}
    if draw(st.booleans()):
        header["outputs"] = draw(st.sampled_from([[{"name": "logits"}], [{"name": "nope"}], [7], "x"]))
    text = json.dumps(header).encode()
    cut = draw(st.sampled_from([None, "len", "short", "long", "junk"]))
    hlen = {
        "len": str(len(text)),
        "short": str(max(len(text) - 3, 0)),
        "long": str(len(text) + 10**6),
        "junk": "-5",
    }
    extra = {} if cut is None else {"Inference-Header-Content-Length": hlen[cut]}
    return text + payload, extra


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
    r = client.post(path, content=body, headers=_headers(token, {"content-type": content_type}))
    assert r.status_code < 500, r.text
    assert "error" in r.json() or r.status_code == 200


@FUZZ
@given(request=oip_requests(), version=st.sampled_from(["", "/versions/1", "/versions/2", "/versions/x"]))
def test_malformed_oip_requests_never_5xx(client, request, version) -> None:
    body, headers = request
    r = client.post(f"/v2/models/pets{version}/infer", content=body, headers=headers)
    assert r.status_code < 500, r.text


@FUZZ
@given(
    pixels=JSON
    | st.lists(
        st.lists(st.integers(-300, 300) | st.floats(), min_size=28, max_size=28), min_size=28, max_size=28
    ),
    feedback=JSON,
    admin=JSON,
    token=TOKENS,
)
def test_malformed_json_fields_never_5xx(client, pixels, feedback, admin, token) -> None:
    def post(path: str, value, headers=None):  # json.dumps writes NaN/Infinity, which clients may send
        return client.post(
            path, content=json.dumps(value), headers={"content-type": "application/json", **(headers or {})}
        )

    assert post("/predict", {"pixels": pixels}).status_code < 500
    assert post("/feedback", feedback, _headers(token, {})).status_code < 500
    r = post("/admin/model", admin, _headers(token, {}))
    assert r.status_code < 500
    if token != "Bearer s3cret":
        assert r.status_code in (401, 403)


@FUZZ
@given(image=st.binary(max_size=4096), kind=st.sampled_from(["png", "gif", "bmp", "jpeg"]))
def test_corrupt_image_uploads_never_5xx(client, image, kind) -> None:
    magic = {"png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF89a", "bmp": b"BM", "jpeg": b"\xff\xd8\xff"}[kind]
    r = client.post("/predict", files={"file": (f"x.{kind}", magic + image, f"image/{kind}")})
    assert r.status_code < 500, r.text


def test_oversized_and_chunked_bodies(client) -> None:
    r = client.post("/predict", content=b"0" * 70_000)
    assert r.status_code == 413

    def chunks():
        for _ in range(100):
            yield b"0" * 1000

    assert client.post("/v2/models/pets/infer", content=chunks()).status_code == 413
    assert client.post("/predict", content=b"{}", headers={"content-length": "abc"}).status_code in (400, 413)
