"""Serving a text model over a real socket: tritonclient's BYTES tensors and httpx JSON get what ONNX
Runtime gives called directly; each batch is padded to its longest text; bad text is a 4xx with one
line; every answered text is a durable, labellable prediction row."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from deploykit import serving
from textkit import MAX_LENGTH, TEXT_CLASSES, onnx_logits, sentences, text_model_folder, tiny_tokenizer

from dcloop.deploy import create_app, get_model_version, promote, register_model_version
from dcloop.deploy._runtime import softmax
from dcloop.store.predictions import add_labels, forget, get_predictions, labelled_examples

AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture(scope="module")
def text_onnx(tmp_path_factory) -> Path:
    return text_model_folder(tmp_path_factory.mktemp("text") / "bundle")


@pytest.fixture(scope="module")
def text_ws(tmp_path_factory, text_onnx: Path):
    from dcloop.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("ws") / "ws")
    register_model_version(ws, text_onnx, name="reviews", classes=TEXT_CLASSES)
    promote(ws, "reviews", version=1)
    return ws


@pytest.fixture(scope="module")
def text_server(text_ws) -> Iterator[str]:
    with serving(create_app(text_ws, "reviews@champion", token="s3cret", max_batch_size=64)) as url:
        yield url


def _tokens(text: str) -> int:
    tokenizer = tiny_tokenizer()
    tokenizer.enable_truncation(MAX_LENGTH)
    return len(tokenizer.encode(text).ids)


def _sequence_sum(url: str) -> tuple[float, float]:
    """(sum, count) of the dcloop_batch_sequence_length histogram, scraped from /metrics."""
    text = httpx.get(f"{url}/metrics").text
    total = float(re.search(r"^dcloop_batch_sequence_length_sum (\S+)$", text, re.M)[1])
    count = float(re.search(r"^dcloop_batch_sequence_length_count (\S+)$", text, re.M)[1])
    return total, count


def test_a_text_version_is_a_folder_with_its_tokenizer(text_ws) -> None:
    version = get_model_version(text_ws, "reviews@1")
    folder = Path(version.path).parent
    assert version.input_shape == [] and version.classes == TEXT_CLASSES
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx", "tokenizer.json"]
    spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()
    assert spec["modality"] == "text" and spec["input"]["max_length"] == MAX_LENGTH
    assert spec["tokenizer_sha256"] == digest  # a changed tokenizer is refused at load


def test_tritonclient_bytes_with_its_defaults_equals_onnx_runtime(text_server, text_ws, text_onnx) -> None:
    import tritonclient.http as httpclient

    texts = [*sentences(5, seed=1), "Brilliant acting, but a slow plot!"]
    client = httpclient.InferenceServerClient(text_server.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("reviews")
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert meta["parameters"]["max_length"] == MAX_LENGTH
        assert f"first {MAX_LENGTH}" in meta["parameters"]["truncation"]
        inp = httpclient.InferInput("text", [len(texts)], "BYTES")
        inp.set_data_from_numpy(np.array(texts, dtype=object))  # binary, length-prefixed by default
        result = client.infer("reviews", [inp])
    finally:
        client.close()
    expected = onnx_logits(text_onnx, texts)
    assert np.abs(expected[:, 0] - expected[:, 1]).std() > 1e-3  # the texts get different answers
    assert np.allclose(result.as_numpy("logits"), expected, atol=1e-4)
    assert np.allclose(result.as_numpy("probabilities"), softmax(expected), atol=1e-5)
    ids = result.get_response()["parameters"]["prediction_ids"].split(",")
    rows = get_predictions(text_ws.store, ids)
    assert [rows[i].input.decode() for i in ids] == texts
    assert [rows[i].input_shape for i in ids] == [[]] * len(texts)
    assert [int(rows[i].mean_intensity) for i in ids] == [_tokens(t) for t in texts]  # token counts


def test_json_bytes_and_predict_equal_onnx_runtime(text_server, text_onnx) -> None:
    texts = ["a good film", "the dull and boring story of a cat"]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": [[t] for t in texts]}]}
    r = httpx.post(f"{text_server}/v2/models/reviews/infer", json=body)
    assert r.status_code == 200, r.text
    logits = np.asarray(next(o for o in r.json()["outputs"] if o["name"] == "logits")["data"]).reshape(2, 2)
    assert np.allclose(logits, onnx_logits(text_onnx, texts), atol=1e-4)
    for text in texts:
        answer = httpx.post(f"{text_server}/predict", json={"text": text}).json()
        plain = httpx.post(
            f"{text_server}/predict", content=text.encode(), headers={"content-type": "text/plain"}
        )
        probs = softmax(onnx_logits(text_onnx, [text]))[0]
        assert np.allclose([answer["probabilities"][c] for c in TEXT_CLASSES], probs, atol=1e-5)
        assert answer["label"] == TEXT_CLASSES[int(probs.argmax())] == plain.json()["label"]
        assert (answer["tokens"], answer["truncated"], answer["max_length"]) == (
            _tokens(text),
            False,
            MAX_LENGTH,
        )


def test_long_texts_are_cut_at_max_length_and_say_so(text_server, text_onnx) -> None:
    long = " ".join(sentences(1, seed=3, words=(40, 40)))
    answer = httpx.post(f"{text_server}/predict", json={"text": long}).json()
    assert (answer["tokens"], answer["truncated"]) == (MAX_LENGTH, True)
    probs = softmax(onnx_logits(text_onnx, [long]))[0]  # the reference truncates at MAX_LENGTH too
    assert np.allclose([answer["probabilities"][c] for c in TEXT_CLASSES], probs, atol=1e-5)
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": [long, "a cat"]}]}
    assert (
        httpx.post(f"{text_server}/v2/models/reviews/infer", json=body).json()["parameters"]["truncated"] == 1
    )


def test_each_batch_is_padded_to_its_longest_text_not_to_max_length(text_server) -> None:
    texts = ["a cat", "the dog sat", "a good and warm film"]  # 3 to 6 tokens with [CLS] and [SEP]
    for batch in (texts, texts[:1], [texts[0], " ".join(["rain"] * 40)]):
        before = _sequence_sum(text_server)
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(batch)], "data": batch}]}
        assert httpx.post(f"{text_server}/v2/models/reviews/infer", json=body).status_code == 200
        after = _sequence_sum(text_server)
        assert after[1] - before[1] == 1  # one request of a few texts: one batch
        assert after[0] - before[0] == max(_tokens(t) for t in batch)
    assert max(_tokens(t) for t in texts) < MAX_LENGTH


def _binary(elements: list[bytes], count: int | None = None) -> tuple[bytes, dict[str, str]]:
    blob = b"".join(elements)
    n = len(elements) if count is None else count
    spec = {"name": "text", "datatype": "BYTES", "shape": [n], "parameters": {"binary_data_size": len(blob)}}
    head = httpx.Request("POST", "/", json={"inputs": [spec]}).content
    return head + blob, {"Inference-Header-Content-Length": str(len(head))}


def _prefixed(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


@pytest.mark.parametrize(
    ("elements", "count", "message"),
    [
        ([struct.pack("<I", 50) + b"short"], 1, "declares 50 bytes but only 5 follow"),
        ([_prefixed(b"a cat"), b"\x01\x00"], 2, "ends inside the 4-byte length prefix of element 1"),
        ([_prefixed(b"a cat"), _prefixed(b"a dog")], 1, "more than the 1 elements"),
        ([_prefixed(b"a cat")], 2, "holds 1 elements; its shape says 2"),
        ([struct.pack("<I", 2**32 - 1)], 1, "declares 4294967295 bytes"),
        ([_prefixed(b"\xff\xfe cat")], 1, "element 0 is not UTF-8 text"),
    ],
)
def test_bad_bytes_length_prefixes_are_400(text_server, elements, count, message) -> None:
    body, headers = _binary(elements, count)
    r = httpx.post(f"{text_server}/v2/models/reviews/infer", content=body, headers=headers)
    assert r.status_code == 400 and message in r.json()["error"], r.text
    assert "\n" not in r.json()["error"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n"])
def test_empty_or_whitespace_text_is_422_on_every_route(text_server, text) -> None:
    r = httpx.post(f"{text_server}/predict", json={"text": text})
    assert r.status_code == 422 and "empty or only whitespace" in r.json()["error"]
    r = httpx.post(f"{text_server}/predict", content=text.encode(), headers={"content-type": "text/plain"})
    assert r.status_code == 422
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a cat", text]}]}
    r = httpx.post(f"{text_server}/v2/models/reviews/infer", json=body)
    assert r.status_code == 422 and "`text[1]` must hold some text" in r.json()["error"]
    raw, headers = _binary([_prefixed(text.encode())])
    r = httpx.post(f"{text_server}/v2/models/reviews/infer", content=raw, headers=headers)
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"pixels": [[1] * 28] * 28}, 422, "`text` is required"),
        ({"text": 5}, 422, "`text` must be a string"),
        ({"text": ["a", "b"]}, 422, "`text` must be a string"),
    ],
)
def test_predict_bodies_that_are_not_one_text(text_server, body, status, message) -> None:
    r = httpx.post(f"{text_server}/predict", json=body)
    assert r.status_code == status and message in r.json()["error"], r.text


def test_image_tensors_to_a_text_model_are_422(text_server) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}]}
    r = httpx.post(f"{text_server}/v2/models/reviews/infer", json=body)
    assert r.status_code == 422 and "takes text: input `text`, datatype BYTES" in r.json()["error"]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]}
    assert httpx.post(f"{text_server}/v2/models/reviews/infer", json=body).status_code == 400


def test_text_rows_are_durable_joinable_and_forgettable(text_server, text_ws) -> None:
    texts = ["superb music and a warm ending", "awful acting in a cold city", "a boring book"]
    ids = [httpx.post(f"{text_server}/predict", json={"text": t}).json()["prediction_id"] for t in texts]
    stored = get_predictions(text_ws.store, ids)  # committed before each answer
    assert [stored[i].input.decode() for i in ids] == texts
    for pid, label in zip(ids, ["pos", "neg", "neg"], strict=True):
        r = httpx.post(f"{text_server}/feedback", json={"prediction_id": pid, "label": label}, headers=AUTH)
        assert r.status_code == 200
    x, y = labelled_examples(text_ws.store, "reviews", ())
    pairs = dict(zip(x.tolist(), y.tolist(), strict=True))
    assert x.dtype == object and {t: pairs[t] for t in texts} == {texts[0]: 1, texts[1]: 0, texts[2]: 0}
    assert forget(text_ws.store, ids=ids[:1]) == 1
    x, _ = labelled_examples(text_ws.store, "reviews", ())
    assert texts[0] not in x.tolist() and texts[1] in x.tolist()
    kept = get_predictions(text_ws.store, ids[:1])[ids[0]]
    assert kept.input is None and kept.mean_intensity == _tokens(texts[0])  # the summary survives


def test_stored_texts_are_bounded(text_server, text_ws) -> None:
    from dcloop.store.predictions import MAX_STORED_TEXT_BYTES

    huge = "é" * MAX_STORED_TEXT_BYTES  # twice the bound in UTF-8 bytes
    pid = httpx.post(f"{text_server}/predict", json={"text": huge}).json()["prediction_id"]
    row = get_predictions(text_ws.store, [pid])[pid]
    assert row.input_bytes <= MAX_STORED_TEXT_BYTES and row.input.decode() == huge[: len(row.input.decode())]
    assert len(row.input.decode()) == MAX_STORED_TEXT_BYTES // 2
    add_labels(text_ws.store, [(pid, "pos")])


def test_dcloop_predict_reads_text_files_as_the_server_does(text_ws, text_onnx, tmp_path: Path) -> None:
    from dcloop.deploy._batch import predict_files

    texts = ["a superb and warm film", "a cold, dull story", " ".join(sentences(1, seed=9, words=(30, 30)))]
    for i, text in enumerate(texts):
        (tmp_path / f"{i}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "3.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "4.txt").write_bytes(b"\xff\xfe\xfa")
    result = predict_files(text_ws, [tmp_path], "reviews@1")
    assert result.failed == 2 and [r.error is None for r in result.rows] == [True] * 3 + [False] * 2
    probs = softmax(onnx_logits(text_onnx, texts))
    got = np.asarray([[r.probabilities[c] for c in TEXT_CLASSES] for r in result.rows[:3]])
    assert np.allclose(got, probs, atol=1e-5)
    assert "empty or only whitespace" in result.rows[3].error and "UTF-8" in result.rows[4].error


def test_a_bundle_registers_with_the_classes_its_model_json_lists(text_ws, text_onnx) -> None:
    version = register_model_version(text_ws, text_onnx, name="bundle")
    assert version.classes == TEXT_CLASSES and version.input_shape == []


def test_a_text_onnx_without_its_tokenizer_is_refused_with_one_line(
    text_ws, text_onnx, tmp_path: Path
) -> None:
    from dcloop.errors import DataError

    bare = tmp_path / "bare.onnx"
    bare.write_bytes(text_onnx.read_bytes())
    with pytest.raises(DataError, match=r"is a text model: it needs tokenizer.json and a model.json"):
        register_model_version(text_ws, bare, name="bare", classes=TEXT_CLASSES)
    (tmp_path / "model.json").write_text('{"modality": "text", "input": {"max_length": 1}}', encoding="utf-8")
    with pytest.raises(DataError, match=r"`input.max_length` must be an integer 2-8192. Got 1"):
        register_model_version(text_ws, bare, name="bare", classes=TEXT_CLASSES)
