"""Over a real socket: the stock tritonclient.http client, and model switches under load."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from deploykit import CLASSES, tiny_cnn_onnx

from dcloop.deploy import get_model_version, load_model, register_model_version
from dcloop.deploy._runtime import softmax
from dcloop.store.predictions import list_predictions


def test_tritonclient_with_its_defaults(live_server, served_ws) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(live_server.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("pets")
        meta = client.get_model_metadata("pets")
        assert meta["inputs"][0]["shape"] == [-1, 1, 28, 28]
        x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)  # binary_data=True by default
        result = client.infer(
            "pets", [inp], outputs=[httpclient.InferRequestedOutput("logits", binary_data=True)]
        )
        logits = result.as_numpy("logits")
        model = load_model(get_model_version(served_ws, "pets@1"))
        assert np.allclose(logits, model.logits(x), atol=1e-5)
        pixels = (x * 255).astype(np.uint8)
        inp8 = httpclient.InferInput("input", list(pixels.shape), "UINT8")
        inp8.set_data_from_numpy(pixels, binary_data=False)
        probs = client.infer("pets", [inp8]).as_numpy("probabilities")  # no outputs: all, binary
        assert np.allclose(probs, softmax(model.logits(pixels.astype(np.float32) / 255)), atol=1e-5)
        with pytest.raises(Exception, match="Unknown model 'cats'"):
            client.infer("cats", [inp])
    finally:
        client.close()
    assert len(list_predictions(served_ws.store)) == 8


def test_switch_under_concurrent_load_drops_nothing(live_server, served_ws, tmp_path) -> None:
    register_model_version(
        served_ws, tiny_cnn_onnx(tmp_path / "v2.onnx", seed=3), name="pets", classes=CLASSES
    )
    pixels = {"pixels": [[7] * 28] * 28}
    auth = {"Authorization": "Bearer s3cret"}

    def fire(n: int) -> list[tuple[int, str]]:
        with httpx.Client(base_url=live_server, timeout=30) as http:
            out = []
            for _ in range(n):
                r = http.post("/predict", json=pixels)
                out.append((r.status_code, r.json().get("model_version", r.text)))
            return out

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(fire, 40) for _ in range(3)]
        with httpx.Client(base_url=live_server, timeout=30) as admin:
            switches = [
                admin.post("/admin/model", json={"model": f"pets@{v}"}, headers=auth) for v in (2, 1, 2)
            ]
        results = [r for f in futures for r in f.result()]
    assert [s.status_code for s in switches] == [200, 200, 200]
    assert len(results) == 120 and {status for status, _ in results} == {200}
    assert {version for _, version in results} <= {"pets@1", "pets@2"}
    final = httpx.post(f"{live_server}/predict", json=pixels).json()
    assert final["model_version"] == "pets@2"
    assert len(list_predictions(served_ws.store)) == 121


def test_concurrent_uint8_and_float_requests_batched_together_agree(live_server) -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (28, 28), dtype=np.uint8)
    bodies = [{"pixels": pixels.tolist()}, {"pixels": (pixels / 255).tolist()}] * 20

    def post(body: dict) -> float:
        return httpx.post(f"{live_server}/predict", json=body, timeout=30).json()["probabilities"]["cat"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, bodies))
    assert max(answers) - min(answers) < 1e-5
