"""Simulated production traffic for the demo: distribution shifts, and a client of the real server app.

The client sends images (UINT8) or texts (BYTES) to the server's Open Inference Protocol endpoint in
small batches (as a Triton/KServe client would), posts true labels for a fraction of the predictions
to ``/feedback``, and can switch the served model through ``/admin/model``.
"""

from __future__ import annotations

import random
import re
import secrets
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dcloop.errors import DcloopError
from dcloop.workspace import Workspace


def _negative(x: np.ndarray) -> np.ndarray:
    """A new camera sends negatives: dark silhouettes on a light background, at 80% contrast."""
    return (255 - np.rint(np.asarray(x, dtype=np.float32) * 0.8)).astype(np.uint8)


def _rotate(x: np.ndarray) -> np.ndarray:
    """The camera is mounted sideways: every image turned 90 degrees."""
    return np.ascontiguousarray(np.rot90(np.asarray(x), k=1, axes=(2, 3)))


SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"negative": _negative, "rotate": _rotate}

# A chat bridge that relays the quotes now heads each one with the channel it came from. The channel is
# about computers, so its words pull every quote towards that class; the quote itself is unchanged.
BANNER = "Forwarded from #unix-help, the computer club's Linux and programming channel:"


def _banner(texts: np.ndarray) -> np.ndarray:
    """Every text arrives headed by the relay's banner (``BANNER``)."""
    return _texts([f"{BANNER} {t}" for t in texts])


_WORD = re.compile(r"\b([A-Za-z]+)\b")


def _typos(texts: np.ndarray, rate: float = 0.4) -> np.ndarray:
    """A phone keyboard without autocorrect: ``rate`` of the words over three letters get one slip (a
    letter dropped, two swapped, or one added), the same slips for the same text on every run."""

    def slip(word: str, rng: random.Random) -> str:
        if len(word) <= 3 or not word.isalpha() or rng.random() >= rate:
            return word
        k, kind = rng.randrange(1, len(word) - 1), rng.randrange(3)
        if kind == 0:
            return word[:k] + word[k + 1 :]
        if kind == 1:
            return word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        return word[:k] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[k:]

    out = []
    for text in texts:
        rng = random.Random(zlib.crc32(str(text).encode("utf-8")))  # the text's own slips, in any order
        words = _WORD.split(str(text))  # even positions: what lies between words
        out.append("".join(w if i % 2 == 0 else slip(w, rng) for i, w in enumerate(words)))
    return _texts(out)


def _texts(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


TEXT_SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"banner": _banner, "typos": _typos}
SHIFTS_BY_MODALITY = {"image": SHIFTS, "text": TEXT_SHIFTS}


def check_shift(modality: str, name: str) -> None:
    """Refuse a shift ``modality`` does not have, before any work starts."""
    if name not in SHIFTS_BY_MODALITY[modality]:
        from dcloop.errors import unknown_name

        raise unknown_name(f"{modality} shift", name, SHIFTS_BY_MODALITY[modality])


def shift_inputs(modality: str, name: str, x: np.ndarray) -> np.ndarray:
    """``x`` (uint8 images, or an object array of texts) as the shift ``name`` changes it."""
    check_shift(modality, name)
    return SHIFTS_BY_MODALITY[modality][name](x)


def shift_images(name: str, x: np.ndarray) -> np.ndarray:
    return shift_inputs("image", name, x)


@dataclass
class TrafficClient:
    """A live in-process server (FastAPI TestClient over the real app) and what was sent to it."""

    ws: Workspace
    model_ref: str
    batch_size: int = 32
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    _stack: ExitStack = field(default_factory=ExitStack)
    _client: Any = None

    def open(self) -> TrafficClient:
        from dcloop.deploy import create_app, in_process_client

        if self._client is None:
            app = create_app(self.ws, self.model_ref, token=self.token, max_batch_size=self.batch_size)
            self._client = self._stack.enter_context(in_process_client(app))
        return self

    def close(self) -> None:
        self._stack.close()
        self._client = None

    @property
    def model_name(self) -> str:
        return self.model_ref.partition("@")[0]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, list[str], str]:
        """Predicted class indices and prediction ids of uint8 images (N, C, H, W) or of texts (an
        object array of str), and the version that answered."""
        self.open()
        predicted, ids, version = [], [], ""
        for start in range(0, len(x), self.batch_size):
            body = {"inputs": [_infer_input(x[start : start + self.batch_size])]}
            answer = self._call("post", f"/v2/models/{self.model_name}/infer", json=body)
            probs = next(o for o in answer["outputs"] if o["name"] == "probabilities")
            predicted.append(
                np.asarray(probs["data"], dtype=np.float32).reshape(probs["shape"]).argmax(axis=1)
            )
            ids += answer["parameters"]["prediction_ids"].split(",")
            version = f"{self.model_name}@{answer['model_version']}"
        return np.concatenate(predicted), ids, version

    def label(self, prediction_ids: list[str], labels: np.ndarray) -> int:
        """Post the true class index of each prediction to /feedback; returns how many were stored."""
        headers = {"Authorization": f"Bearer {self.token}"}
        for pid, label in zip(prediction_ids, labels, strict=True):
            self._call("post", "/feedback", json={"prediction_id": pid, "label": int(label)}, headers=headers)
        return len(prediction_ids)

    def switch(self, model_ref: str) -> str:
        """Ask the server to serve ``model_ref`` (the admin endpoint); returns the version it serves."""
        headers = {"Authorization": f"Bearer {self.token}"}
        answer = self._call("post", "/admin/model", json={"model": model_ref}, headers=headers)
        return str(answer["model_version"])

    def alert_gauges(self) -> dict[str, float]:
        """The ``dcloop_alert`` gauges the server's /metrics shows."""
        self.open()
        text = self._client.get("/metrics").text
        gauges = {}
        for line in text.splitlines():
            if line.startswith("dcloop_alert{"):
                labels, _, value = line.rpartition(" ")
                gauges[labels[len('dcloop_alert{name="') : -2]] = float(value)
        return gauges

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.open()
        response = getattr(self._client, method)(path, **kwargs)
        if response.status_code != 200:
            raise DcloopError(f"Server answered {response.status_code} to {path}: {response.text[:200]}")
        return response.json()


def _infer_input(batch: np.ndarray) -> dict[str, Any]:
    """One OIP input tensor: texts as BYTES strings (input ``text``), images as UINT8 (input ``input``)."""
    if batch.dtype == object:
        return {"name": "text", "datatype": "BYTES", "shape": [len(batch)], "data": [str(t) for t in batch]}
    pixels = np.ascontiguousarray(batch, dtype=np.uint8)
    return {
        "name": "input",
        "datatype": "UINT8",
        "shape": list(pixels.shape),
        "data": pixels.ravel().tolist(),
    }


@dataclass
class ShiftedTraffic:
    """The feedback step's traffic in the demo: a stream of shifted inputs, a share of them labelled,
    then the held-out shifted inputs (unlabelled) to measure the served model's accuracy."""

    client: TrafficClient
    stream: tuple[np.ndarray, np.ndarray]
    held_out: tuple[np.ndarray, np.ndarray]
    label_fraction: float
    seed: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    def __call__(self, ws: Workspace, model_ref: str) -> dict[str, Any]:
        self.client.model_ref = model_ref
        x, y = self.stream
        predicted, ids, version = self.client.predict(x)
        rng = np.random.default_rng(self.seed)
        chosen = np.sort(rng.choice(len(ids), round(len(ids) * self.label_fraction), replace=False))
        labelled = self.client.label([ids[i] for i in chosen], y[chosen])
        eval_pred, _, _ = self.client.predict(self.held_out[0])
        self.summary = {
            "served": version,
            "stream": len(ids),
            "labelled": labelled,
            "stream_accuracy": float((predicted == y).mean()),
            "held_out_accuracy": float((eval_pred == self.held_out[1]).mean()),
        }
        return self.summary
