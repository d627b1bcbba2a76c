"""`dcloop predict`: batch inference on image files (or, for a text model, text files) from the command line.

It uses what the server uses: the registered model version's ONNX Runtime session
(``deploy.runtime``) and the image decoder `/predict` and `dcloop data import` share, so a file gets
the same class and probabilities here as when it is uploaded. Nothing is stored: to have predictions
logged for feedback and monitoring, send them to the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcloop.data import ImageRejected, decode_image
from dcloop.deploy._runtime import OnnxModel, as_model_input, load_model, softmax
from dcloop.errors import DataError
from dcloop.workspace import Workspace

CHUNK = 256  # images decoded and run at once: bounded memory for a folder of any size


@dataclass(frozen=True)
class FilePrediction:
    """One file's answer: its class and probabilities, or why it could not be read."""

    file: str
    label: str | None
    confidence: float | None
    probabilities: dict[str, float]
    error: str | None = None


@dataclass(frozen=True)
class BatchPrediction:
    """The model version that answered and one row per file, in the order the files were given."""

    model: str
    classes: list[str]
    rows: list[FilePrediction]

    @property
    def failed(self) -> int:
        return sum(r.error is not None for r in self.rows)


def predict_files(ws: Workspace, paths: Sequence[str | Path], model: str | None = None) -> BatchPrediction:
    """Classify image files and folders (searched recursively, hidden entries skipped) with ``model``
    (NAME, NAME@ALIAS or NAME@VERSION; default: `serve.model`, else the only model's champion).

    A file that cannot be decoded gets a row with its ``error``; a path that does not exist is a
    DataError before anything runs.
    """
    from dcloop.deploy._registry import get_model_version, resolve_model_name

    files = list(_expand(paths))
    ref = model or ws.config.serve.model or f"{resolve_model_name(ws)}@champion"
    onnx = load_model(get_model_version(ws, ref), threads=ws.config.serve.threads)
    max_pixels = ws.config.serve.max_image_pixels
    rows: list[FilePrediction] = []
    run = _predict_chunk if onnx.text is None else _predict_text_chunk
    for start in range(0, len(files), CHUNK):
        rows += run(onnx, files[start : start + CHUNK], max_pixels)
    return BatchPrediction(onnx.version.ref, onnx.classes, rows)


def _expand(paths: Sequence[str | Path]) -> Iterator[Path]:
    if not paths:
        raise DataError("Give image files or a folder to predict. Example: dcloop predict photos/")
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise DataError(f"No such file or folder: {', '.join(missing)}.")
    for given in map(Path, paths):
        if not given.is_dir():
            yield given
            continue
        found = sorted(_walk(given))
        if not found:
            raise DataError(f"Folder {given} holds no files to predict.")
        yield from found


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from (Path(root) / n for n in names if not n.startswith("."))


def _predict_chunk(onnx: OnnxModel, files: Sequence[Path], max_pixels: int) -> list[FilePrediction]:
    c, h, w = onnx.input_shape
    images: list[np.ndarray] = []
    errors: dict[int, str] = {}
    for i, path in enumerate(files):
        try:
            images.append(decode_image(path, c, h, w, max_pixels))
        except ImageRejected as rejected:
            errors[i] = rejected.reason
    probs = softmax(onnx.logits(as_model_input(np.stack(images)))) if images else np.zeros((0, 0))
    return _rows(onnx, files, probs, errors)


def _predict_text_chunk(onnx: OnnxModel, files: Sequence[Path], max_pixels: int) -> list[FilePrediction]:
    """A text model reads each file as one UTF-8 text, tokenized and cut as the server does it."""
    from dcloop.deploy._text import encode

    assert onnx.text is not None
    texts: list[str] = []
    errors: dict[int, str] = {}
    for i, path in enumerate(files):
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors[i] = f"not readable as UTF-8 text: {exc}"
            continue
        if not text.strip():
            errors[i] = "empty or only whitespace"
            continue
        texts.append(text)
    logits = [onnx.text_logits(encode(onnx.text, texts[i : i + 64])) for i in range(0, len(texts), 64)]
    probs = softmax(np.concatenate(logits)) if texts else np.zeros((0, 0))
    return _rows(onnx, files, probs, errors)


def _rows(
    onnx: OnnxModel, files: Sequence[Path], probs: np.ndarray, errors: dict[int, str]
) -> list[FilePrediction]:
    answers = iter(probs)
    rows = []
    for i, path in enumerate(files):
        if i in errors:
            rows.append(FilePrediction(str(path), None, None, {}, errors[i]))
            continue
        p = next(answers)
        best = int(p.argmax())
        by_class = {name: float(v) for name, v in zip(onnx.classes, p, strict=True)}
        rows.append(FilePrediction(str(path), onnx.classes[best], float(p[best]), by_class))
    return rows
