"""dcloop from Python: import data, train, optimize, register, serve in-process, send a prediction
and its label.

    python examples/api.py                       # in a temporary folder, the default recipe
    python examples/api.py my-ws --model tiny-cnn --epochs 1 --images 200   # seconds, as the test runs it
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import dcloop
from dcloop.deploy import in_process_client, mirror_registry
from dcloop.optimize import optimize
from dcloop.train import train


def main(folder: Path, model: str | None, epochs: int | None, images: int | None) -> dict:
    # A workspace: dcloop.yaml with defaults and .dcloop/ (SQLite store, artifacts).
    ws = dcloop.init_workspace(folder)
    if images:  # a smaller real subset: the first `images` cats and dogs of Animal-MNIST
        full = dcloop.import_source(ws, "animal-mnist", classes=["cat", "dog"], name="full")
        data = dcloop.load_dataset(ws, full.id)
        keep = np.concatenate([np.flatnonzero(data.y == k)[: images // 2] for k in (0, 1)])
        np.savez(
            folder / "subset.npz", x=np.asarray(data.x[keep]), y=data.y[keep], classes=np.array(data.classes)
        )
        dataset = dcloop.import_source(ws, str(folder / "subset.npz"), name="pets")
    else:
        dataset = dcloop.import_source(ws, "animal-mnist", classes=["cat", "dog"], name="pets")

    # Train: the workspace recipe (train: in dcloop.yaml), with any field changed here.
    changes = {k: v for k, v in {"model": model, "epochs": epochs}.items() if v is not None}
    run = train(ws, ws.config.train.model_copy(update=changes), dataset.id)
    print(f"run {run.id[:12]}: test accuracy {run.metrics['accuracy']:.4f}")

    # Optimize: ONNX and static int8 variants, measured; the recommended one by the selection rule.
    result = optimize(ws, run.id, methods=["onnx", "int8"])
    best = result.recommended
    print(f"recommended {best.method} variant {best.id[:12]}, report {result.report_path}")

    # Register it and make it the champion (the first champion needs no gate).
    version = dcloop.register_model_version(ws, best.id, name="pets", alias="champion")
    mirror_registry(ws, "pets")  # and in MLflow's model registry, as `dcloop models register` does

    # Serve in-process: the same FastAPI app `dcloop serve` runs, without a socket.
    app = dcloop.create_app(ws, "pets@champion", token="secret")
    image = np.asarray(data_image(ws, dataset.id))
    with in_process_client(app) as client:
        answer = client.post("/predict", content=png(image), headers={"content-type": "image/png"}).json()
        label = client.post(
            "/feedback",
            json={"prediction_id": answer["prediction_id"], "label": "cat"},
            headers={"Authorization": "Bearer secret"},
        )
    print(
        f"{version.ref} says {answer['label']} ({max(answer['probabilities'].values()):.2f}); label: {label.status_code}"
    )
    return {
        "run": run,
        "optimization": result,
        "version": version,
        "answer": answer,
        "label": label.status_code,
    }


def data_image(ws: dcloop.Workspace, dataset_id: str) -> np.ndarray:
    """The first test image of the data set, as H x W uint8 pixels."""
    x, _ = dcloop.load_dataset(ws, dataset_id).arrays("test")
    return np.asarray(x[0, 0])


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", type=Path, help="Workspace folder (default: a temporary one).")
    parser.add_argument("--model", help="Zoo model (default: the workspace recipe's).")
    parser.add_argument("--epochs", type=int, help="Epochs (default: the workspace recipe's).")
    parser.add_argument("--images", type=int, help="Train on this many Animal-MNIST cats and dogs only.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        main(args.folder or Path(tmp) / "ws", args.model, args.epochs, args.images)
