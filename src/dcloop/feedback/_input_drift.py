"""Input drift of one model version's traffic against its own data set version, one entry per modality.

Images: PSI compares the traffic with a sample of the whole data set version; the embedding test
compares it with the version's validation and test images, which the weights never trained on
(embeddings of training images are tighter than those of any unseen image, in distribution or not).
Texts: both compare with the held-out texts; the unseen-token share counts tokens the training texts
never used, so only held-out texts are a fair reference for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcloop.config import MonitorConfig
from dcloop.errors import DcloopError
from dcloop.feedback import _drift as drift
from dcloop.feedback import _text_drift as text_drift
from dcloop.store.predictions import Prediction, prediction_pixels, prediction_text
from dcloop.workspace import Workspace

if TYPE_CHECKING:
    from dcloop.data import PreparedDataset
    from dcloop.store.registry import ModelVersion


@dataclass(frozen=True)
class DriftReport:
    """Input drift of one version's traffic against its data set (reference) version."""

    ref: str
    dataset_id: str
    reference_split: str  # the splits the embedding test compares with (held out from training)
    reference_n: int  # images of the version sampled for PSI
    current_n: int
    psi: dict[str, float]
    embedding: dict[str, float] | None
    note: str = ""
    plots: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # arrays for the report
    alert: str = "pixel_drift"  # the kind of alert a PSI above the threshold raises (text_drift for texts)


def input_drift(ws: Workspace, rows: list[Prediction], cfg: MonitorConfig) -> DriftReport:
    """Input drift of the stored inputs of one version, by the modality of its data set: PSI per
    input feature (pixel statistics of images; token length and unknown/unseen-token shares of texts)
    and the embedding KS test."""
    from dcloop.data import load_dataset
    from dcloop.deploy import get_model_version

    version = get_model_version(ws, f"{rows[0].model_name}@{rows[0].model_version}")
    if version.dataset_id is None:
        return DriftReport(
            version.ref, "", "", 0, 0, {}, None, note="the version records no data set version"
        )
    dataset = load_dataset(ws, version.dataset_id)
    return DRIFT[dataset.modality](ws, version, dataset, rows, cfg)


def _image_drift(
    ws: Workspace, version: ModelVersion, dataset: PreparedDataset, rows: list[Prediction], cfg: MonitorConfig
) -> DriftReport:
    current = np.stack([p for p in (prediction_pixels(r) for r in rows) if p is not None])
    if current.shape[1:] != tuple(dataset.image_shape):
        note = f"stored inputs are {list(current.shape[1:])}, the data set is {list(dataset.image_shape)}"
        return DriftReport(version.ref, dataset.id, "", 0, len(current), {}, None, note=note)
    rng = np.random.default_rng(0)
    everything = np.arange(len(dataset.y))
    held_out = np.concatenate([dataset.splits["val"], dataset.splits["test"]])
    reference = np.asarray(dataset.x[_sample(everything, cfg.reference_size, rng)])
    unseen = np.asarray(
        dataset.x[_sample(held_out if len(held_out) else everything, cfg.reference_size, rng)]
    )
    ref_features, cur_features = drift.pixel_features(reference), drift.pixel_features(current)
    psi = {k: drift.psi(ref_features[k], cur_features[k], cfg.psi_bins) for k in ref_features}
    plots: dict[str, Any] = {"features": (ref_features, cur_features)}
    embedding, note = None, ""
    try:
        ref_emb, cur_emb = (_embeddings(ws, version.run_id, x) for x in (unseen, current))
        embedding = drift.embedding_drift(ref_emb, cur_emb, cfg.embedding_components)
        plots["projection"] = drift.principal_projection(ref_emb, cur_emb, 1)
    except DcloopError as exc:  # no run or no trained model: PSI still stands
        note = f"no embedding test: {exc}"
    split = "val+test" if len(held_out) else "train"
    return DriftReport(
        version.ref, dataset.id, split, len(reference), len(current), psi, embedding, note, plots
    )


def _text_drift(
    ws: Workspace, version: ModelVersion, dataset: PreparedDataset, rows: list[Prediction], cfg: MonitorConfig
) -> DriftReport:
    """Texts: PSI on each text's token length, unknown-token share and share of tokens the training
    texts never used, all against held-out texts of the data set; KS on the model's pooled embeddings."""
    from dcloop.deploy._text import load_registered

    current = [t for t in (prediction_text(r) for r in rows) if t is not None]
    spec = load_registered(Path(version.path).parent)
    if spec is None:
        return DriftReport(version.ref, dataset.id, "", 0, len(current), {}, None, note="not a text model")
    rng = np.random.default_rng(0)
    train, held_out = dataset.splits["train"], np.concatenate([dataset.splits["val"], dataset.splits["test"]])
    if not len(held_out):  # no held-out texts: half of the training texts stand in for them
        train, held_out = train[: len(train) // 2], train[len(train) // 2 :]
    vocabulary = text_drift.vocabulary(spec, list(dataset.x[_sample(train, cfg.reference_size, rng)]))
    reference = [str(t) for t in dataset.x[_sample(held_out, cfg.reference_size, rng)]]
    ref_features = text_drift.text_features(spec, reference, vocabulary)
    cur_features = text_drift.text_features(spec, current, vocabulary)
    psi = {k: drift.psi(ref_features[k], cur_features[k], cfg.psi_bins) for k in ref_features}
    plots: dict[str, Any] = {"features": (ref_features, cur_features)}
    embedding, note = None, ""
    try:
        ref_emb, cur_emb = (
            _text_embeddings(ws, version.run_id, x, spec.max_length) for x in (reference, current)
        )
        embedding = drift.embedding_drift(ref_emb, cur_emb, cfg.embedding_components)
        plots["projection"] = drift.principal_projection(ref_emb, cur_emb, 1)
    except DcloopError as exc:
        note = f"no embedding test: {exc}"
    split = "val+test" if len(dataset.splits["val"]) + len(dataset.splits["test"]) else "train (half)"
    return DriftReport(
        version.ref,
        dataset.id,
        split,
        len(reference),
        len(current),
        psi,
        embedding,
        note,
        plots,
        "text_drift",
    )


DRIFT: dict[str, Callable[..., DriftReport]] = {"image": _image_drift, "text": _text_drift}


def _sample(index: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(index, size, replace=False)) if len(index) > size else index


def _embeddings(ws: Workspace, run_id: str | None, x: np.ndarray) -> np.ndarray:
    """Penultimate-layer features: the input of the model's last Linear layer, via a forward hook."""
    from torch import nn

    from dcloop.train import predict_arrays

    if run_id is None:
        raise DcloopError("the version records no training run")
    model = _run_model(ws, run_id)
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise DcloopError(f"the model of run {run_id[:12]} has no Linear head")
    captured: list[np.ndarray] = []
    handle = heads[-1].register_forward_pre_hook(
        lambda _m, args: captured.append(args[0].detach().flatten(1).float().cpu().numpy())
    )
    try:
        predict_arrays(model, x)
    finally:
        handle.remove()
    return np.concatenate(captured)


def _text_embeddings(ws: Workspace, run_id: str | None, texts: list[str], max_length: int) -> np.ndarray:
    """The pooled embeddings the text model classifies from (``train.predict_texts``)."""
    from dcloop.train import predict_texts

    if run_id is None:
        raise DcloopError("the version records no training run")
    trained = _trained(ws, run_id)
    return predict_texts(trained.model, trained.tokenizer, texts, max_length)[1]


_models: dict[tuple[str, str], Any] = {}


def _run_model(ws: Workspace, run_id: str) -> Any:
    """The PyTorch model of a run (see ``_trained``)."""
    return _trained(ws, run_id).model


def _trained(ws: Workspace, run_id: str) -> Any:
    """A run's trained model (and tokenizer); the last one loaded is kept (a run's weights never change)."""
    from dcloop.train import load_trained

    key = (str(ws.root), run_id)
    if key not in _models:
        _models.clear()
        _models[key] = load_trained(ws, run_id)
    return _models[key]
