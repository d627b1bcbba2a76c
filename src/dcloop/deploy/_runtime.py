"""The inference runtime: an ONNX Runtime session of one registered model version.

onnxruntime is imported inside the functions that need it, so importing dcloop stays light.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcloop.errors import DataError, StoreError
from dcloop.store.registry import ModelVersion

if TYPE_CHECKING:
    from dcloop.deploy._text import TextSpec, TokenBatch


@dataclass(frozen=True)
class OnnxModel:
    """A loaded model version: its session and what it expects. Safe to call from several threads."""

    version: ModelVersion
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    output_name: str
    text: TextSpec | None = None  # the tokenizer and length limit of a text model; None for images

    @property
    def modality(self) -> str:
        return "image" if self.text is None else "text"

    @property
    def classes(self) -> list[str]:
        return list(self.version.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.version.input_shape
        return int(c), int(h), int(w)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, K) of float32 images in [0, 1] shaped (N, C, H, W)."""
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def text_logits(self, batch: TokenBatch) -> np.ndarray:
        """Logits (N, K) of a batch of token ids (``deploy._text.encode``)."""
        return self.session.run([self.output_name], {"input_ids": batch.ids, "attention_mask": batch.mask})[0]

    def predict_classes(self, x: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Predicted class indices (N,) of uint8 images (N, C, H, W) or, for a text model, of texts
        (a sequence of str), run ``chunk`` inputs at a time."""
        if not len(x):
            return np.zeros(0, dtype=np.int64)
        if self.text is not None:
            from dcloop.deploy._text import encode

            spec, chunk = self.text, min(chunk, 64)  # a text chunk pads to its longest member
            parts = [
                self.text_logits(encode(spec, [str(t) for t in x[i : i + chunk]]))
                for i in range(0, len(x), chunk)
            ]
        else:
            parts = [self.logits(as_model_input(x[i : i + chunk])) for i in range(0, len(x), chunk)]
        return np.concatenate([p.argmax(axis=1) for p in parts])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def as_model_input(x: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from uint8 pixels (scaled by 1/255) or from floats already in [0, 1]."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1 / 255)
    return np.ascontiguousarray(x, dtype=np.float32)


def as_pixels(x: np.ndarray) -> np.ndarray:
    """uint8 pixels of model input (the form predictions are stored in)."""
    if x.dtype == np.uint8:
        return x
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _session(path: Path, threads: int) -> Any:
    from dcloop.optimize._onnx import onnx_session

    # Spinning threads burn the cores that HTTP handling and the store need on a small machine.
    return onnx_session(path, threads, spinning=False)


def inspect_onnx(path: Path) -> tuple[list[int], int]:
    """([C, H, W], number of classes) of an ONNX classifier, checked against the dcloop contract."""
    session = _session(path, threads=1)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if sorted(i.name for i in inputs) == ["attention_mask", "input_ids"]:
        raise DataError(
            f"{path} is a text model: it needs tokenizer.json and a model.json saying "
            '"modality": "text" and input.max_length beside it.'
        )
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise DataError(f"{path} must take one input shaped (N, C, H, W). Got {[i.shape for i in inputs]}.")
    chw = inputs[0].shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in chw):
        raise DataError(f"{path} input must have fixed C, H, W. Got {inputs[0].shape}.")
    out = outputs[0].shape
    if len(out) != 2 or not isinstance(out[1], int):
        raise DataError(f"{path} output must be logits shaped (N, K). Got {out}.")
    return [int(d) for d in chw], int(out[1])


def load_model(version: ModelVersion, threads: int = 1) -> OnnxModel:
    """Load a version's ONNX file after checking its content address (a changed file is refused)."""
    path = Path(version.path)
    if not path.is_file():
        raise StoreError(f"Model artifact {path} of {version.ref} is missing.")
    if sha256_file(path) != version.sha256:
        raise StoreError(
            f"Model artifact {path} of {version.ref} does not match its sha256; refusing to load it."
        )
    from dcloop.deploy._text import load_registered

    text = load_registered(path.parent)
    session = _session(path, threads)
    return OnnxModel(
        version=version,
        session=session,
        input_name=session.get_inputs()[0].name,
        output_name=session.get_outputs()[0].name,
        text=text,
    )
