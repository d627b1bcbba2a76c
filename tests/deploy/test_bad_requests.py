"""Requests that once answered 500, each now a 4xx ``{"error": ...}`` on every store backend."""

from __future__ import annotations

import json

import pytest
from deploykit import CLASSES
from fastapi.testclient import TestClient
from fuzzkit import AUTH, Req, reproducer_images, reproducers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcloop.deploy import create_app
from dcloop.deploy._schema import MAX_VERSION, Feedback, ModelSwitch, parse

# Pillow warns about the damaged images sent on purpose; what matters is the answer.
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning:PIL", "ignore::DeprecationWarning:PIL", "ignore::PIL.Image.DecompressionBombWarning"
)


@pytest.fixture
def any_store_client(tmp_path, store_url, onnx_path):
    """The server on a workspace whose store is SQLite or PostgreSQL (``DCLOOP_TEST_PG_URL``)."""
    from dcloop.deploy import promote, register_model_version
    from dcloop.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    (ws.root / "dcloop.yaml").write_text(f"store:\n  url: '{store_url}'\n", encoding="utf-8")
    from dcloop.workspace import open_workspace

    ws = open_workspace(ws.root)
    register_model_version(ws, onnx_path, name="pets", classes=CLASSES)
    promote(ws, "pets", version=1)
    with TestClient(create_app(ws, "pets@champion", token="s3cret")) as client:
        yield client


def _send(client: TestClient, req: Req):
    return client.request(req.method, req.path, content=req.body, headers=req.header_dict())


def test_each_reproducer_answers_4xx_with_an_error(any_store_client) -> None:
    for req in reproducers():
        r = _send(any_store_client, req)
        assert 400 <= r.status_code < 500, (req.kind, r.text)
        error = r.json()["error"]
        assert error and "\n" not in error and " at 0x" not in error, (req.kind, error)  # no object address


def test_write_fields_are_checked_before_the_store_sees_them(any_store_client) -> None:
    pid = any_store_client.post("/predict", json={"pixels": [[1] * 28] * 28}).json()["prediction_id"]
    post = any_store_client.post
    r = post("/feedback", json={"prediction_id": pid, "label": "²"}, headers=dict([AUTH]))
    assert r.status_code == 422 and "ASCII digits" in r.json()["error"]
    r = post("/feedback", json={"prediction_id": "ab\u0000cd", "label": 1}, headers=dict([AUTH]))
    assert r.status_code == 422 and "`prediction_id` must be a prediction id" in r.json()["error"]
    for ref in ("pets@²", "pets@99999999999999999999", f"pets@{MAX_VERSION + 1}"):
        r = post("/admin/model", json={"model": ref}, headers=dict([AUTH]))
        assert r.status_code == 422 and "`model`" in r.json()["error"], ref
    r = post("/admin/model", json={"model": f"pets@{MAX_VERSION}"}, headers=dict([AUTH]))
    assert r.status_code == 404 and f"no version {MAX_VERSION}" in r.json()["error"]
    assert (
        post("/feedback", json={"prediction_id": pid, "label": "1"}, headers=dict([AUTH])).status_code == 200
    )
    assert post("/admin/model", json={"model": "pets@1"}, headers=dict([AUTH])).status_code == 200


def test_error_text_names_the_field_and_the_value(served_ws) -> None:
    with TestClient(create_app(served_ws, "pets@1", token="s3cret")) as client:
        body = {
            "inputs": [{"name": "input", "datatype": ["FP32"], "shape": [1, 1, 28, 28], "data": [0] * 784}]
        }
        r = client.post("/v2/models/pets/infer", json=body)
        assert r.status_code == 422
        assert r.json()["error"] == (
            "Inference request: `inputs[0].datatype` input should be 'FP32', 'UINT8' or 'BYTES', got ['FP32']."
        )
        r = client.post(
            "/v2/models/pets/infer", content=b"{}", headers={"Inference-Header-Content-Length": "²".encode()}
        )
        assert (
            r.status_code == 400 and "Inference-Header-Content-Length must be an integer" in r.json()["error"]
        )
        r = client.post("/predict", content=b'{"pixels": NaN}', headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"].startswith("Request body is not valid JSON")
        r = client.post("/predict", content=b"\x89PNG broken", headers={"content-type": "image/png"})
        assert r.status_code == 415 and " at 0x" not in r.json()["error"]


@pytest.mark.parametrize("name", sorted(reproducer_images()))
def test_images_whose_decoder_raises_anything_are_4xx(client_1, name: str) -> None:
    data = reproducer_images()[name]
    r = client_1.post("/predict", content=data, headers={"content-type": "application/octet-stream"})
    assert r.status_code in (400, 413, 415) and r.json()["error"]
    r = client_1.post("/predict", files={"file": (f"x.{name}", data, "image/x")})
    assert r.status_code in (400, 413, 415)


@pytest.fixture
def client_1(served_ws):
    with TestClient(create_app(served_ws, "pets@1")) as client:
        yield client


def test_an_unexpected_error_is_a_logged_json_500_and_the_app_keeps_serving(served_ws, caplog) -> None:
    """The last resort: a failure no handler foresees (here the feedback table vanished under the server)."""
    import sqlite3

    with TestClient(create_app(served_ws, "pets@1", token="s3cret"), raise_server_exceptions=False) as client:
        pid = client.post("/predict", json={"pixels": [[0] * 28] * 28}).json()["prediction_id"]
        db = sqlite3.connect(served_ws.store_url.removeprefix("sqlite:///"))
        db.execute("ALTER TABLE feedback RENAME TO feedback_away")
        db.commit()
        try:
            r = client.post("/feedback", json={"prediction_id": pid, "label": 1}, headers=dict([AUTH]))
        finally:
            db.execute("ALTER TABLE feedback_away RENAME TO feedback")
            db.commit()
            db.close()
        assert r.status_code in (500, 503) and r.headers["content-type"] == "application/json", r.text
        assert r.json()["error"] and "feedback_away" not in r.json()["error"]
        if r.status_code == 500:
            assert "Internal server error (reference" in r.json()["error"]
            assert any(rec.exc_info for rec in caplog.records if "failed (reference" in rec.getMessage())
        assert (
            client.post(
                "/feedback", json={"prediction_id": pid, "label": 1}, headers=dict([AUTH])
            ).status_code
            == 200
        )


def test_request_models_parse_what_the_routes_accept() -> None:
    assert parse(Feedback, {"prediction_id": "a" * 32, "label": 3}).label == 3
    assert parse(ModelSwitch, {"model": "pets@champion"}).model == "pets@champion"
    with pytest.raises(Exception, match="`label` must be a class name"):
        parse(Feedback, {"prediction_id": "a", "label": "x\u0000"})
    with pytest.raises(Exception, match=r"`label` must be a class name .* or a class index, got True"):
        parse(Feedback, {"prediction_id": "a", "label": True})
    assert json.dumps(parse(Feedback, {"prediction_id": "a", "label": "dog"}).model_dump()) == (
        '{"prediction_id": "a", "label": "dog"}'
    )


@pytest.mark.parametrize("ref", ["pets@²", "pets@99999999999999999999", "pets@2147483648", "pe ts"])
def test_serve_refuses_a_malformed_model_reference_in_one_line(served_ws, ref: str) -> None:
    from dcloop.deploy import serve
    from dcloop.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^The model to serve (must be|version must be) .* Got "):
        serve(served_ws, ref, port=1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ref=st.from_regex(
        r"pets@[0-9]{1,12}|pets@[A-Za-z][A-Za-z0-9_-]{0,8}|[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True
    ),
    prediction_id=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=70),
    label=st.integers(-(2**70), 2**70) | st.text(max_size=8),
)
def test_whatever_the_models_accept_every_store_backend_takes(
    any_store_client, ref, prediction_id, label
) -> None:
    """Model and store agree: a body that passes validation never fails in the database (int4, NUL)."""
    auth = dict([AUTH])
    r = any_store_client.post("/admin/model", json={"model": ref}, headers=auth)
    assert r.status_code in (200, 404, 409, 422), r.text
    if r.status_code == 422:
        assert "`model`" in r.json()["error"]
    body = json.dumps({"prediction_id": prediction_id, "label": label})
    r = any_store_client.post("/feedback", content=body, headers={**auth, "content-type": "application/json"})
    assert r.status_code in (400, 404, 422), r.text


def test_fp32_data_beyond_float32_is_refused_not_cast_to_infinity(served_ws) -> None:
    with TestClient(create_app(served_ws, "pets@1", token="s3cret")) as client:
        for value in (1e300, -1e39):
            data = [0.0] * 783 + [value]
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": data}]}
            r = client.post("/v2/models/pets/infer", json=body)
            assert r.status_code == 400 and "finite numbers within float32's range" in r.json()["error"]
