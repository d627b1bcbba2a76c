"""The server in-process (TestClient, real ONNX Runtime, real SQLite store)."""

from __future__ import annotations

import io
import json
import re
import struct
import time

import numpy as np
import pytest
from deploykit import CLASSES, tiny_cnn_onnx
from fastapi.testclient import TestClient

from dcloop.deploy import create_app, get_model_version, load_model, register_model_version
from dcloop.deploy._metrics import clear_alerts, set_alert
from dcloop.deploy._runtime import softmax
from dcloop.feedback import labelled_predictions
from dcloop.store.predictions import list_predictions

AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def client(served_ws):
    app = create_app(
        served_ws, "pets@champion", token="s3cret", max_body_bytes=200_000, max_image_pixels=512 * 512
    )
    with TestClient(app) as c:
        yield c


def _png(array: np.ndarray, mode: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _reference(ws, pixels: np.ndarray) -> np.ndarray:
    model = load_model(get_model_version(ws, "pets@1"))
    return softmax(model.logits(pixels.astype(np.float32)[None] / 255))[0]


def test_predict_json_pixels_matches_onnx_and_is_stored(client, served_ws) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    r = client.post("/predict", json={"pixels": pixels.tolist()})
    assert r.status_code == 200
    body = r.json()
    expected = _reference(served_ws, pixels[None])
    assert [body["probabilities"][c] for c in CLASSES] == pytest.approx(expected.tolist(), abs=1e-6)
    assert body["label"] == CLASSES[int(expected.argmax())] and body["model_version"] == "pets@1"
    (stored,) = list_predictions(served_ws.store)
    assert stored.id == body["prediction_id"] and stored.endpoint == "predict"
    assert np.frombuffer(stored.input, np.uint8).reshape(28, 28).tolist() == pixels.tolist()
    floats = client.post("/predict", json={"pixels": (pixels[None] / 255).tolist()})
    assert floats.json()["probabilities"]["cat"] == pytest.approx(body["probabilities"]["cat"], abs=1e-5)


def test_predict_image_upload_converts_mode_and_size(client, served_ws) -> None:
    rgb = np.zeros((56, 40, 3), dtype=np.uint8)
    rgb[:, :20] = 255
    r = client.post("/predict", files={"file": ("x.png", _png(rgb, "RGB"), "image/png")})
    assert r.status_code == 200, r.text
    (stored,) = list_predictions(served_ws.store)
    assert stored.input_shape == [1, 28, 28]
    gray = np.frombuffer(stored.input, np.uint8).reshape(28, 28)
    assert gray[:, :8].min() == 255 and gray[:, -8:].max() == 0
    raw = client.post("/predict", content=_png(rgb[..., 0], "L"), headers={"content-type": "image/png"})
    assert raw.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"json": {"pixels": [[1, 2], [3, 4]]}}, 422, "must be shaped 28x28 or 1x28x28. Got 2x2"),
        ({"json": {"pixels": [[2.0] * 28] * 28}}, 422, "floats must be finite and in"),
        ({"json": {"pixels": [[300] * 28] * 28}}, 422, "integers must be 0-255"),
        ({"json": {"pixels": [[1], [1, 2]]}}, 400, "rectangular nested list"),
        ({"json": {"image": 1}}, 422, "`pixels` is required; `image` is not a field of it"),
        ({"content": b"not json"}, 415, "Send an image"),
        (
            {"content": b"\x89PNG broken", "headers": {"content-type": "image/png"}},
            415,
            "not a readable image",
        ),
        ({"content": b"x" * 300_000}, 413, "at most 200000 bytes"),
    ],
)
def test_predict_rejects_bad_input_with_4xx(client, kwargs, status, message) -> None:
    r = client.post("/predict", **kwargs)
    assert r.status_code == status
    assert message in r.json()["error"]


def test_with_prediction_logging_off_answers_are_the_same_and_nothing_is_stored(served_ws) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    app = create_app(served_ws, "pets@champion", token="s3cret", log_predictions=False)
    with TestClient(app) as quiet:
        body = quiet.post("/predict", json={"pixels": pixels.tolist()}).json()
        expected = _reference(served_ws, pixels[None])
        assert [body["probabilities"][c] for c in CLASSES] == pytest.approx(expected.tolist(), abs=1e-6)
        label = {"prediction_id": body["prediction_id"], "label": "dog"}
        assert quiet.post("/feedback", json=label, headers=AUTH).status_code == 404  # never stored
    assert list_predictions(served_ws.store) == []


def test_predict_refuses_huge_images_before_decoding(client) -> None:
    big = _png(np.zeros((1024, 1024), dtype=np.uint8), "L")
    r = client.post("/predict", content=big, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "at most 262144 pixels" in r.json()["error"]


def test_feedback_needs_the_token_and_joins_the_prediction(client, served_ws) -> None:
    pid = client.post("/predict", json={"pixels": [[0] * 28] * 28}).json()["prediction_id"]
    item = {"prediction_id": pid, "label": "dog"}
    assert client.post("/feedback", json=item).status_code == 401
    assert client.post("/feedback", json=item, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.post("/feedback", json=item, headers={"Authorization": "Basic s3cret"}).status_code == 403
    assert client.post("/feedback", json=item, headers=AUTH).status_code == 200
    assert (
        client.post("/feedback", json={"prediction_id": "nope", "label": 1}, headers=AUTH).status_code == 404
    )
    assert (
        client.post("/feedback", json={"prediction_id": pid, "label": "eel"}, headers=AUTH).status_code == 422
    )
    (row,) = labelled_predictions(served_ws.store)
    assert (row.id, row.label, row.label_source) == (pid, "dog", "api")


def test_admin_switch_needs_the_token_and_serves_the_new_version(client, served_ws, tmp_path) -> None:
    register_model_version(
        served_ws, tiny_cnn_onnx(tmp_path / "v2.onnx", seed=1), name="pets", classes=CLASSES
    )
    assert client.post("/admin/model", json={"model": "pets@2"}).status_code == 401
    assert (
        client.post(
            "/admin/model", json={"model": "pets@2"}, headers={"Authorization": "Bearer x"}
        ).status_code
        == 403
    )
    missing = client.post("/admin/model", json={"model": "pets@9"}, headers=AUTH)
    assert missing.status_code == 404 and "no version 9" in missing.json()["error"]
    r = client.post("/admin/model", json={"model": "pets@2"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["model_version"] == "pets@2"
    assert client.post("/predict", json={"pixels": [[0] * 28] * 28}).json()["model_version"] == "pets@2"
    assert client.get("/v2/models/pets").json()["versions"] == ["2"]
    served = re.findall(
        r'dcloop_model_info\{model="pets",sha256="\w+",version="(\d)"\} 1\.0', client.get("/metrics").text
    )
    assert served == ["2"]  # version 1 drops to 0


def test_metrics_exposition(client) -> None:
    client.post("/predict", json={"pixels": [[0] * 28] * 28})
    client.post("/predict", json={"pixels": [[0]]})
    set_alert("drift_pixels", True)
    try:
        text = client.get("/metrics").text
    finally:
        clear_alerts()
    assert 'dcloop_requests_total{endpoint="/predict",status="200"} 1.0' in text
    assert 'dcloop_requests_total{endpoint="/predict",status="422"} 1.0' in text
    assert 'dcloop_errors_total{kind="bad_request"} 1.0' in text
    assert "dcloop_batch_size_count 1.0" in text and "dcloop_queue_depth 0" in text
    assert 'dcloop_alert{name="drift_pixels"} 1.0' in text
    assert re.search(r'dcloop_model_info\{model="pets",sha256="\w+",version="1"\} 1\.0', text)
    for line in text.splitlines():  # every sample line is "name{labels} value"
        assert line.startswith("#") or float(line.rsplit(" ", 1)[1]) >= 0


def test_oip_metadata_and_json_infer(client, served_ws) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    meta = client.get("/v2/models/pets/versions/1").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert client.get("/v2/models/pets/versions/7").status_code == 404
    assert client.get("/v2/models/cats").status_code == 404
    x = np.random.default_rng(1).integers(0, 256, (3, 1, 28, 28), dtype=np.uint8)
    request = {
        "inputs": [
            {"name": "input", "datatype": "UINT8", "shape": [3, 1, 28, 28], "data": x.ravel().tolist()}
        ]
    }
    body = client.post("/v2/models/pets/infer", json=request).json()
    probs = next(o for o in body["outputs"] if o["name"] == "probabilities")
    assert probs["shape"] == [3, 2]
    expected = np.stack([_reference(served_ws, x[i]) for i in range(3)])
    assert np.allclose(np.asarray(probs["data"]).reshape(3, 2), expected, atol=1e-6)
    assert len(body["parameters"]["prediction_ids"].split(",")) == 3


def test_oip_binary_request_by_hand(client) -> None:
    x = np.full((2, 1, 28, 28), 0.5, dtype=np.float32)
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [2, 1, 28, 28],
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    r = client.post(
        "/v2/models/pets/infer",
        content=head + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert r.status_code == 200
    n = int(r.headers["Inference-Header-Content-Length"])
    meta = json.loads(r.content[:n])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 16
    logits = struct.unpack("<4f", r.content[n:])
    assert logits[:2] == pytest.approx(logits[2:])
    truncated = client.post(
        "/v2/models/pets/infer",
        content=head + x.tobytes()[:-3],
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert truncated.status_code == 400 and "Binary input must be 6272 bytes" in truncated.json()["error"]


def test_follow_champion_switches_when_the_alias_moves(served_ws, tmp_path) -> None:
    from dcloop.deploy import promote

    register_model_version(
        served_ws, tiny_cnn_onnx(tmp_path / "v2.onnx", seed=2), name="pets", classes=CLASSES
    )
    app = create_app(served_ws, "pets@champion", follow_champion_s=0.02)
    with TestClient(app) as client:
        assert client.get("/v2/models/pets").json()["versions"] == ["1"]
        promote(served_ws, "pets", version=2, force=True, reason="test")
        deadline = time.monotonic() + 20  # bounded poll of the served version
        while time.monotonic() < deadline:
            if client.get("/v2/models/pets").json()["versions"] == ["2"]:
                break
            time.sleep(0.01)
        assert client.post("/predict", json={"pixels": [[0] * 28] * 28}).json()["model_version"] == "pets@2"


def test_write_endpoints_refuse_everyone_without_a_server_token(served_ws) -> None:
    with TestClient(create_app(served_ws, "pets@1", token=None)) as client:
        assert client.post("/admin/model", json={"model": "pets@1"}).status_code == 401
        assert client.post("/admin/model", json={"model": "pets@1"}, headers=AUTH).status_code == 403
        assert client.post("/predict", json={"pixels": [[0] * 28] * 28}).status_code == 200


def test_server_applies_input_retention_at_start(served_ws) -> None:
    with TestClient(create_app(served_ws, "pets@1")) as client:
        for _ in range(3):
            client.post("/predict", json={"pixels": [[9] * 28] * 28})
    assert all(p.input is not None for p in list_predictions(served_ws.store))
    app = create_app(served_ws, "pets@1", max_input_mb=1000 / 1024 / 1024)  # room for one 784-byte input
    with TestClient(app):
        deadline = time.monotonic() + 20  # bounded poll: the retention pass runs in the background at start
        while time.monotonic() < deadline:
            if sum(p.input is not None for p in list_predictions(served_ws.store)) == 1:
                break
            time.sleep(0.01)
    kept = [p for p in list_predictions(served_ws.store) if p.input is not None]
    assert len(kept) == 1 and kept[0].created_at == max(
        p.created_at for p in list_predictions(served_ws.store)
    )
