"""Trained models at rest: ``model.safetensors`` + ``model.json`` in a run folder, and evaluation.

``model.json`` says how to rebuild the module (zoo name and builder keywords; for an image model trained
with ``train.tta``, the ``views`` it answers with, see ``_views``), its ``modality``, what
it takes (images: float32 in [0, 1], (N, C, H, W); text: ``input_ids`` and ``attention_mask`` int64
(N, T) up to ``max_length``, made by the ``tokenizer.json`` beside it) and returns (logits over
``classes``). A LoRA run's weights are already merged; its adapters alone sit in
``adapter.safetensors``. Loading never runs code from the files.
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
from dcloop.train._views import VIEWS, with_views
from dcloop.workspace import Workspace

WEIGHTS = "model.safetensors"
SPEC = "model.json"
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class TrainedModel:
    """A run's model (eval mode, on CPU), its record, its model.json, its data set version and, for
    text, its tokenizer (``tokenizers.Tokenizer``)."""

    model: nn.Module
    run: RunRecord
    spec: dict[str, Any]
    dataset: PreparedDataset
    tokenizer: Any = None


def model_kwargs(recipe: TrainConfig, dataset: PreparedDataset, tokenizer: Any = None) -> dict[str, Any]:
    """The zoo builder's keywords for ``recipe`` on ``dataset`` (what model.json records)."""
    if dataset.modality == "text":
        # the token width of text-tiny is 4x the zoo's base width, as vit-tiny's; minilm-l6 has its own
        return {
            "num_classes": dataset.num_classes,
            "vocab_size": tokenizer.get_vocab_size(),
            "max_length": recipe.max_length,
            "width": 4 * recipe.width,
            "pretrained": False,
        }
    channels, height, _ = dataset.image_shape
    return {
        "in_channels": channels,
        "num_classes": dataset.num_classes,
        "image_size": height,
        "width": recipe.width,
    }


def model_spec(
    recipe: TrainConfig, dataset: PreparedDataset, run_id: str, tokenizer: Any = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": recipe.model,
        "modality": dataset.modality,
        "kwargs": model_kwargs(recipe, dataset, tokenizer),
        "classes": dataset.classes,
        "output": "logits",
        "weights": WEIGHTS,
        "run_id": run_id,
        "dataset_id": dataset.id,
    }
    if dataset.modality == "text":
        from dcloop.train._finetune import ADAPTER

        spec["input"] = {
            "names": ["input_ids", "attention_mask"],
            "dtype": "int64",
            "max_length": recipe.max_length,
        }
        spec["tokenizer"] = TOKENIZER
        spec["finetune"] = recipe.finetune
        if recipe.finetune == "lora":
            spec["adapter"] = ADAPTER
        return spec
    spec["input"] = {
        "dtype": "float32",
        "range": [0.0, 1.0],
        "layout": "NCHW",
        "shape": [None, *dataset.image_shape],
    }
    if recipe.tta != "none":
        spec["views"] = recipe.tta
    return spec


def build_tokenizer(recipe: TrainConfig, dataset: PreparedDataset) -> Any:
    """The text model's tokenizer, cutting texts at ``recipe.max_length`` (None for images)."""
    if dataset.modality != "text":
        return None
    from dcloop.train._text_models import text_tokenizer

    tokenizer = text_tokenizer(recipe.model, texts=list(dataset.arrays("train")[0]))
    tokenizer.enable_truncation(recipe.max_length)
    return tokenizer


def build_model(recipe: TrainConfig, dataset: PreparedDataset, tokenizer: Any = None) -> nn.Module:
    """The recipe's zoo model with its initial weights (pretrained ones where the entry has them)."""
    from dcloop.train._models import create_model

    kwargs = model_kwargs(recipe, dataset, tokenizer)
    if dataset.modality == "text":
        kwargs["pretrained"] = True
    return create_model(recipe.model, **kwargs)


def prepare_model(model: nn.Module, recipe: TrainConfig) -> nn.Module:
    """Apply the recipe's fine-tuning options (gradient checkpointing, LoRA) to a built model."""
    from dcloop.train import _finetune

    if recipe.grad_checkpointing:
        _finetune.enable_grad_checkpointing(model)
    if recipe.finetune == "lora":
        _finetune.apply_lora(model, recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout)
    return model


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def load_model(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a run folder from model.json and load its safetensors weights."""
    from dcloop.train._checkpoint import load_weights
    from dcloop.train._models import create_model

    spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
    views = spec.get("views", "none")
    if views not in VIEWS:
        raise DataError(f"{folder / SPEC}: views must be one of {', '.join(VIEWS)}, not {views!r}.")
    model = create_model(spec["model"], **spec["kwargs"])
    model.load_state_dict(load_weights(folder / spec["weights"]))
    return with_views(model, views).eval(), spec


def load_tokenizer(folder: Path, spec: dict[str, Any]) -> Any:
    """The tokenizer a text model's folder carries (None for images)."""
    if "tokenizer" not in spec:
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / spec["tokenizer"]))


def save_tokenizer(tokenizer: Any, path: Path) -> None:
    write_text(path, tokenizer.to_str(pretty=True))


def load_trained(workspace: Workspace, run_ref: str) -> TrainedModel:
    """The trained model of a run (id or unique prefix) with its record and data set version."""
    from dcloop.data import load_dataset

    run = store_runs.get_run(workspace.store, run_ref)
    folder = Path(run.path)
    if not (folder / WEIGHTS).is_file() or not (folder / SPEC).is_file():
        raise NotFoundError(f"Run {run.id[:12]} has no trained model in {folder} (status {run.status}).")
    model, spec = load_model(folder)
    dataset = load_dataset(workspace, run.dataset_id)
    return TrainedModel(model, run, spec, dataset, tokenizer=load_tokenizer(folder, spec))


def holdout_metrics(
    model: nn.Module, dataset: PreparedDataset, tokenizer: Any = None, max_length: int = 128
) -> dict[str, Any]:
    """Classification metrics of ``model`` on the test split of ``dataset`` (text: with ``tokenizer``)."""
    from dcloop.train._metrics import classification_metrics, predict_arrays

    x, y = dataset.arrays("test")
    if len(x) == 0:
        raise DataError(
            f"Data set version {dataset.id[:12]} has an empty test split; set data.test_fraction > 0."
        )
    if dataset.modality == "text":
        from dcloop.train._predict_text import predict_texts

        probs, _ = predict_texts(model, tokenizer, list(x), max_length)
        pred = probs.argmax(axis=1).astype("int64")
    else:
        pred, probs = predict_arrays(model, x)
    return classification_metrics(y, pred, probs, dataset.classes)


def evaluate(workspace: Workspace, run_ref: str, dataset: str | None = None) -> dict[str, Any]:
    """Test metrics of a run's model on its own data set version, or on ``dataset`` (same classes/shape)."""
    from dcloop.data import load_dataset

    trained = load_trained(workspace, run_ref)
    data = trained.dataset if dataset is None else load_dataset(workspace, dataset)
    spec = trained.spec
    modality = spec.get("modality", "image")
    if data.modality != modality or data.classes != spec["classes"]:
        raise DataError(
            f"Data set version {data.id[:12]} ({data.modality}, classes {data.classes}) does not match run "
            f"{trained.run.id[:12]} ({modality}, classes {spec['classes']})."
        )
    if modality == "image" and list(data.image_shape) != spec["input"]["shape"][1:]:
        raise DataError(
            f"Data set version {data.id[:12]} (shape {list(data.image_shape)}) does not match run "
            f"{trained.run.id[:12]} (shape {spec['input']['shape'][1:]})."
        )
    max_length = spec["input"].get("max_length", 128)
    metrics = holdout_metrics(trained.model, data, trained.tokenizer, max_length)
    return {"run": trained.run.id, "dataset": data.id, **metrics}


def run_tokenizer(folder: Path, recipe: TrainConfig, dataset: PreparedDataset, write: bool) -> Any:
    """The run's tokenizer (None for images): the one saved in its folder when resuming, else built
    (and saved when ``write``), so a resumed run tokenizes exactly as it started."""
    if dataset.modality != "text":
        return None
    if (folder / TOKENIZER).is_file():
        return load_tokenizer(folder, {"tokenizer": TOKENIZER})
    tokenizer = build_tokenizer(recipe, dataset)
    if write:
        save_tokenizer(tokenizer, folder / TOKENIZER)
    return tokenizer


def save_trained(
    folder: Path, model: nn.Module, recipe: TrainConfig, dataset: PreparedDataset, run_id: str, tokenizer: Any
) -> None:
    """Write the trained weights and model.json; a LoRA model's adapters (and head) go alone to
    adapter.safetensors, then are merged, so model.safetensors is a plain model of the zoo entry."""
    from dcloop.train import _finetune
    from dcloop.train._checkpoint import save_weights

    if _finetune.is_lora(model):
        save_weights(_finetune.adapter_state(model), folder / _finetune.ADAPTER)
        model = _finetune.merge_lora(model)
    save_weights(model.state_dict(), folder / WEIGHTS)
    write_json(folder / SPEC, model_spec(recipe, dataset, run_id, tokenizer))
