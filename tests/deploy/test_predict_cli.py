"""`dcloop predict` answers each file exactly as the server's /predict answers its upload (same
ONNX Runtime session, same decoder), in table, JSON and CSV, and says which files it could not read."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from deploykit import CLASSES
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.cli import main


def _png(array: np.ndarray, mode: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder of PNGs of several sizes and modes (one in a sub-folder), and a hidden file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    (folder / "a.png").write_bytes(_png(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L"))
    (folder / "b.png").write_bytes(_png(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), "RGB"))
    (folder / "more" / "c.png").write_bytes(_png(rng.integers(0, 256, (10, 90), dtype=np.uint8), "L"))
    (folder / ".DS_Store").write_bytes(b"not an image")
    return folder


@pytest.fixture
def cli(served_ws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``dcloop ARGS`` through the real entry point in the workspace: (exit code, stdout, stderr)."""
    monkeypatch.chdir(served_ws.root)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["dcloop", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_predict_folder_matches_the_server(served_ws, cli, images: Path) -> None:
    code, out, err = cli("predict", str(images), "--format", "json")
    assert code == 0, err
    got = json.loads(out)
    assert got["model"] == "pets@1"
    files = [Path(r["file"]).relative_to(images).as_posix() for r in got["predictions"]]
    assert files == ["a.png", "b.png", "more/c.png"]  # sorted, recursive, hidden entries skipped
    from dcloop.deploy import create_app

    with TestClient(create_app(served_ws, "pets@champion", token="t")) as client:
        for row in got["predictions"]:
            upload = Path(row["file"]).read_bytes()
            served = client.post("/predict", content=upload, headers={"content-type": "image/png"}).json()
            assert row["label"] == served["label"]
            assert row["probabilities"] == pytest.approx(served["probabilities"], abs=1e-6)
            assert row["confidence"] == pytest.approx(max(row["probabilities"].values()))


def test_predict_csv_and_table(served_ws, cli, images: Path) -> None:
    code, out, err = cli("predict", str(images / "a.png"), str(images / "b.png"), "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [Path(r["file"]).name for r in rows] == ["a.png", "b.png"]
    for r in rows:
        probs = [float(r[f"p_{c}"]) for c in CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5) and r["label"] == CLASSES[int(np.argmax(probs))]
        assert r["error"] == ""
    code, out, _ = cli("predict", str(images / "a.png"))
    assert code == 0 and "pets@1" in out and rows[0]["label"] in out


def test_unreadable_file_gets_its_reason_and_exit_1(served_ws, cli, images: Path) -> None:
    (images / "notes.txt").write_text("hello", encoding="utf-8")
    code, out, err = cli("predict", str(images), "--format", "json")
    assert code == 1 and "1 of 4 files could not be read" in err
    by_name = {Path(r["file"]).name: r for r in json.loads(out)["predictions"]}
    assert by_name["notes.txt"]["label"] is None and by_name["notes.txt"]["error"]
    assert by_name["a.png"]["label"] in CLASSES


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "missing.png"], "error: No such file or folder: missing.png."),
        (["predict", "x", "--model", "nope"], "error: No such file or folder: x."),
        (["predict", ".", "--model", "nope@1"], "error: Unknown model 'nope'"),
    ],
)
def test_bad_input_is_one_line(served_ws, cli, args: list[str], message: str) -> None:
    (served_ws.root / "one.png").write_bytes(_png(np.zeros((28, 28), np.uint8), "L"))
    code, _, err = cli(*args)
    assert code == 1 and err.startswith(message) and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def module_ws(tmp_path_factory: pytest.TempPathFactory):
    """pets@1 champion in a workspace shared by the examples of the property test."""
    from deploykit import tiny_cnn_onnx

    from dcloop.deploy import promote, register_model_version
    from dcloop.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("ws") / "ws")
    onnx = tiny_cnn_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    register_model_version(ws, onnx, name="pets", classes=CLASSES)
    promote(ws, "pets", version=1)
    return ws


@settings(max_examples=15)
@given(st.lists(st.sampled_from(["png", "junk", "empty"]), min_size=1, max_size=6))
def test_any_mix_of_files_gives_one_row_each_in_order(module_ws, kinds: list[str]) -> None:
    import tempfile

    from dcloop.deploy._batch import predict_files

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, kind in enumerate(kinds):
            path = Path(tmp) / f"{i}.{kind}"
            data = {"png": _png(np.full((28, 28), i * 20, np.uint8), "L"), "junk": b"\x00junk", "empty": b""}
            path.write_bytes(data[kind])
            paths.append(path)
        result = predict_files(module_ws, paths)
    assert [Path(r.file).name for r in result.rows] == [p.name for p in paths]
    assert [r.error is None for r in result.rows] == [k == "png" for k in kinds]
    assert result.failed == sum(k != "png" for k in kinds)
