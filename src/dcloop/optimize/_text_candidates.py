"""Candidate variants of a trained text model, in a staging folder: the fp32 ONNX export (parity
asserted on the test split), its fused transformer graph, dynamic int8 of the fused graph, and a
distilled student with fewer encoder layers.

Every variant folder holds ``model.onnx``, ``tokenizer.json`` (the run's) and ``model.json``
(modality text, input names, max length, pad id, classes), so registering and serving a variant
needs nothing else.
"""

from __future__ import annotations

import copy
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcloop.config import OptimizeConfig
from dcloop.errors import DcloopError
from dcloop.optimize._candidates import ONNX_NAME, Candidate, retry_hint, train_recipe
from dcloop.optimize._text_onnx import (
    check_text_parity,
    check_vocab,
    export_text_onnx,
    max_abs_diff,
    text_onnx_logits,
    write_text_bundle,
)

if TYPE_CHECKING:
    from torch import nn

    from dcloop.train import TrainedModel

log = logging.getLogger(__name__)

TEXT_METHODS = ("onnx", "int8", "distill")


def make_text_candidates(
    trained: TrainedModel,
    tokenizer: Any,
    ids: np.ndarray,
    lengths: np.ndarray,
    methods: list[str],
    cfg: OptimizeConfig,
    staging: Path,
) -> list[Candidate]:
    """The baseline export and its fused graph first, then int8 and distill when asked."""
    from dcloop.optimize._text_quantize import bert_dims

    model = trained.model
    check_vocab(tokenizer, model)
    max_length = int(trained.spec["input"]["max_length"])
    bundle = (tokenizer, list(trained.dataset.classes), max_length)
    macs, num_params = text_macs(model, float(lengths.mean()) if len(lengths) else 1.0), _count(model)
    baseline = _export(model, "onnx", staging, bundle, cfg.opset, {"opset": cfg.opset}, macs, num_params)
    diff = check_text_parity(model, baseline.folder / ONNX_NAME, ids, lengths)
    if diff > cfg.parity_tolerance:
        raise DcloopError(
            f"ONNX export differs from PyTorch by {diff:.3g} on the test split (max |logit diff|), "
            f"above optimize.parity_tolerance {cfg.parity_tolerance:g}."
        )
    baseline.params.update(parity_max_abs_diff=diff, max_length=max_length)
    made, parent = [baseline], baseline
    dims = bert_dims(model)
    if dims is None:
        log.info("no BERT-shaped configuration in %s: no fused graph", type(model).__name__)
    else:
        parent = _fused(baseline, dims, bundle, ids, lengths, cfg, staging)
        made.append(parent)
    if "int8" in methods:
        made.append(_int8(parent, bundle, cfg, staging))
    if "distill" in methods:
        made.append(_distill(trained, tokenizer, bundle, ids, lengths, cfg, staging))
    return made


def _new(staging: Path) -> tuple[str, Path]:
    variant_id = uuid.uuid4().hex
    return variant_id, staging / variant_id


def _export(
    model: nn.Module,
    method: str,
    staging: Path,
    bundle: tuple[Any, list[str], int],
    opset: int,
    params: dict[str, Any],
    macs: int,
    num_params: int,
) -> Candidate:
    variant_id, folder = _new(staging)
    export_text_onnx(model, folder / ONNX_NAME, bundle[2], opset)
    write_text_bundle(folder, *bundle)
    return Candidate(variant_id, method, folder, params, macs, num_params)


def _fused(
    baseline: Candidate,
    dims: tuple[int, int],
    bundle: tuple[Any, list[str], int],
    ids: np.ndarray,
    lengths: np.ndarray,
    cfg: OptimizeConfig,
    staging: Path,
) -> Candidate:
    from dcloop.optimize._onnx import onnx_session
    from dcloop.optimize._text_quantize import fuse_transformer

    variant_id, folder = _new(staging)
    counts = fuse_transformer(baseline.folder / ONNX_NAME, folder / ONNX_NAME, *dims)
    write_text_bundle(folder, *bundle)
    # a graph rewrite, not an approximation: the fused file must give the export's logits
    diff = max_abs_diff(
        text_onnx_logits(onnx_session(baseline.folder / ONNX_NAME), ids, lengths),
        text_onnx_logits(onnx_session(folder / ONNX_NAME), ids, lengths),
    )
    if diff > cfg.parity_tolerance:
        raise DcloopError(
            f"The fused transformer graph differs from the fp32 export by {diff:.3g} on the test split, "
            f"above optimize.parity_tolerance {cfg.parity_tolerance:g}."
        )
    params = {"optimizer": "onnxruntime.transformers bert", "fusions": counts, "parity_max_abs_diff": diff}
    return Candidate(
        variant_id, "fused", folder, params, baseline.macs, baseline.num_params, parent=baseline.id
    )


def _int8(
    parent: Candidate, bundle: tuple[Any, list[str], int], cfg: OptimizeConfig, staging: Path
) -> Candidate:
    from dcloop.optimize._text_quantize import quantize_dynamic_int8

    variant_id, folder = _new(staging)
    quantize_dynamic_int8(parent.folder / ONNX_NAME, folder / ONNX_NAME, per_channel=cfg.per_channel)
    write_text_bundle(folder, *bundle)
    params = {"format": "dynamic int8 (QInt8 weights)", "per_channel": cfg.per_channel, "of": parent.method}
    return Candidate(variant_id, "int8", folder, params, parent.macs, parent.num_params, parent=parent.id)


def _distill(
    trained: TrainedModel,
    tokenizer: Any,
    bundle: tuple[Any, list[str], int],
    ids: np.ndarray,
    lengths: np.ndarray,
    cfg: OptimizeConfig,
    staging: Path,
) -> Candidate:
    from dcloop.optimize._distill import fit_student
    from dcloop.train._isolated import call_isolated

    teacher = trained.model
    student, kept = shallow_student(teacher, cfg.text_student_layers)
    plan = train_recipe(trained.run.config, epochs=cfg.distill_epochs, loss="cross_entropy")
    args = (student, teacher, trained.dataset, plan, cfg.temperature, cfg.alpha)
    fit = call_isolated("distill", retry_hint("distill"), fit_student, *args, tokenizer=tokenizer)
    taught = fit.model.cpu().eval()
    params = {
        "student": f"{trained.run.model} keeping encoder layers {kept}",
        "layers": len(kept),
        "temperature": cfg.temperature,
        "alpha": cfg.alpha,
        "epochs": cfg.distill_epochs,
    }
    mean = float(lengths.mean()) if len(lengths) else 1.0
    return _export(
        taught, "distill", staging, bundle, cfg.opset, params, text_macs(taught, mean), _count(taught)
    )


def shallow_student(teacher: nn.Module, layers: int) -> tuple[nn.Module, list[int]]:
    """A copy of ``teacher`` keeping ``layers`` of its encoder layers, evenly spaced (first and last
    kept), with its embeddings and head: a student that starts from what the teacher learned
    (the layer-dropping start of DistilBERT), and shares its tokenizer."""
    from torch import nn

    student = copy.deepcopy(teacher)
    stacks = layer_stacks(student)
    if not stacks:
        raise DcloopError(f"{type(teacher).__name__} has no encoder layer stack to shorten for distillation.")
    owner, stack = stacks[0]
    total = len(stack)
    if not 1 <= layers < total:
        raise DcloopError(
            f"optimize.text_student_layers must be between 1 and {total - 1} (the teacher has {total} layers). "
            f"Got {layers}."
        )
    kept = sorted({round(i * (total - 1) / max(1, layers - 1)) for i in range(layers)}) if layers > 1 else [0]
    owner.layer = nn.ModuleList(stack[i] for i in kept)
    for module in student.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "num_hidden_layers"):
            config.num_hidden_layers = len(kept)
    return student.train(), kept


def text_macs(model: nn.Module, tokens: float) -> int:
    """Multiply-adds of one text of ``tokens`` tokens: every linear layer once per token, plus the
    attention scores and weighted sum (2 x T^2 x hidden per layer) of a BERT-shaped model."""
    from torch import nn

    from dcloop.optimize._text_quantize import bert_dims

    linear = sum(int(m.in_features * m.out_features) for m in model.modules() if isinstance(m, nn.Linear))
    attention = 0.0
    dims = bert_dims(model)
    if dims is not None:
        layers = sum(len(stack) for _, stack in layer_stacks(model))
        attention = 2.0 * layers * tokens * tokens * dims[1]
    return max(1, int(linear * tokens + attention))


def layer_stacks(model: nn.Module) -> list[tuple[nn.Module, nn.ModuleList]]:
    """(owner, its ``layer`` list) of every encoder layer stack in ``model`` (one in a BERT)."""
    from torch import nn

    found = []
    for module in model.modules():
        stack = getattr(module, "layer", None)
        if isinstance(stack, nn.ModuleList):
            found.append((module, stack))
    return found


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
