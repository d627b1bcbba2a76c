"""Trained models at rest: ``model.safetensors`` + ``model.json`` in a run folder, and evaluation.

``model.json`` says how to rebuild the module (zoo name and builder keywords) and what it takes
(float32 in [0, 1], (N, C, H, W)) and returns (logits over ``classes``); loading never runs code
from the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from dcloop.atomic import write_text
from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.errors import DataError, NotFoundError
from dcloop.store import RunRecord
from dcloop.store import runs as store_runs
from dcloop.workspace import Workspace

WEIGHTS = "model.safetensors"
SPEC = "model.json"


@dataclass(frozen=True)
class TrainedModel:
    """A run's model (eval mode, on CPU), its record, its model.json and its data set version."""

    model: nn.Module
    run: RunRecord
    spec: dict[str, Any]
    dataset: PreparedDataset


def model_spec(recipe: TrainConfig, dataset: PreparedDataset, run_id: str) -> dict[str, Any]:
    channels, height, _ = dataset.image_shape
    return {
        "model": recipe.model,
        "kwargs": {
            "in_channels": channels,
            "num_classes": dataset.num_classes,
            "image_size": height,
            "width": recipe.width,
        },
        "classes": dataset.classes,
        "input": {
            "dtype": "float32",
            "range": [0.0, 1.0],
            "layout": "NCHW",
            "shape": [None, *dataset.image_shape],
        },
        "output": "logits",
        "weights": WEIGHTS,
        "run_id": run_id,
        "dataset_id": dataset.id,
    }


def build_model(recipe: TrainConfig, dataset: PreparedDataset) -> nn.Module:
    from dcloop.train._models import create_model

    channels, height, _ = dataset.image_shape
    return create_model(recipe.model, channels, dataset.num_classes, height, width=recipe.width)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def load_model(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a run folder from model.json and load its safetensors weights."""
    from dcloop.train._checkpoint import load_weights
    from dcloop.train._models import create_model

    spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
    model = create_model(spec["model"], **spec["kwargs"])
    model.load_state_dict(load_weights(folder / spec["weights"]))
    return model.eval(), spec


def load_trained(workspace: Workspace, run_ref: str) -> TrainedModel:
    """The trained model of a run (id or unique prefix) with its record and data set version."""
    from dcloop.data import load_dataset

    run = store_runs.get_run(workspace.store, run_ref)
    folder = Path(run.path)
    if not (folder / WEIGHTS).is_file() or not (folder / SPEC).is_file():
        raise NotFoundError(f"Run {run.id[:12]} has no trained model in {folder} (status {run.status}).")
    model, spec = load_model(folder)
    return TrainedModel(model=model, run=run, spec=spec, dataset=load_dataset(workspace, run.dataset_id))


def holdout_metrics(model: nn.Module, dataset: PreparedDataset) -> dict[str, Any]:
    """Classification metrics of ``model`` on the test split of ``dataset``."""
    from dcloop.train._metrics import classification_metrics, predict_arrays

    x, y = dataset.arrays("test")
    if len(x) == 0:
        raise DataError(
            f"Data set version {dataset.id[:12]} has an empty test split; set data.test_fraction > 0."
        )
    pred, probs = predict_arrays(model, x)
    return classification_metrics(y, pred, probs, dataset.classes)


def evaluate(workspace: Workspace, run_ref: str, dataset: str | None = None) -> dict[str, Any]:
    """Test metrics of a run's model on its own data set version, or on ``dataset`` (same classes/shape)."""
    from dcloop.data import load_dataset

    trained = load_trained(workspace, run_ref)
    data = trained.dataset if dataset is None else load_dataset(workspace, dataset)
    if (
        data.classes != trained.spec["classes"]
        or list(data.image_shape) != trained.spec["input"]["shape"][1:]
    ):
        raise DataError(
            f"Data set version {data.id[:12]} (classes {data.classes}, shape {list(data.image_shape)}) does not "
            f"match run {trained.run.id[:12]} (classes {trained.spec['classes']}, shape {trained.spec['input']['shape'][1:]})."
        )
    return {"run": trained.run.id, "dataset": data.id, **holdout_metrics(trained.model, data)}
