"""Making candidate variants of a trained model in a staging folder: the fp32 ONNX baseline (with
its parity check), static int8 of it, a pruned and fine-tuned model, a distilled student."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcloop.config import OptimizeConfig, TrainConfig
from dcloop.errors import DcloopError

if TYPE_CHECKING:
    from torch import nn

    from dcloop.data import PreparedDataset

ONNX_NAME = "model.onnx"


@dataclass(frozen=True)
class Candidate:
    """A variant made but not yet recorded: its staging folder, method, parameters, torch-side size."""

    id: str
    method: str
    folder: Path
    params: dict[str, Any]
    macs: int
    num_params: int
    parent: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def make_candidates(
    model: nn.Module,
    run_config: dict[str, Any],
    data: PreparedDataset,
    methods: list[str],
    cfg: OptimizeConfig,
    staging: Path,
) -> list[Candidate]:
    from dcloop.optimize._onnx import check_parity
    from dcloop.optimize._prune import count_macs_params

    shape = data.image_shape
    x_test, _ = data.arrays("test")
    macs, num_params = count_macs_params(model, shape)
    baseline = _export(model, "onnx", staging, shape, cfg.opset, {"opset": cfg.opset}, macs, num_params)
    diff = check_parity(model, baseline.folder / ONNX_NAME, x_test)
    if diff > cfg.parity_tolerance:
        raise DcloopError(
            f"ONNX export differs from PyTorch by {diff:.3g} on the test split (max |logit diff|), "
            f"above optimize.parity_tolerance {cfg.parity_tolerance:g}."
        )
    baseline.params["parity_max_abs_diff"] = diff
    made = [baseline]
    if "int8" in methods:
        made.append(_int8(baseline, data, cfg, staging))
    if "prune" in methods:
        made.append(_prune(model, run_config, data, cfg, staging))
    if "distill" in methods:
        made.append(_distill(model, run_config, data, cfg, staging))
    return made


def _export(
    model: nn.Module,
    method: str,
    staging: Path,
    shape: tuple[int, int, int],
    opset: int,
    params: dict[str, Any],
    macs: int,
    num_params: int,
) -> Candidate:
    from dcloop.optimize._onnx import export_onnx

    variant_id = uuid.uuid4().hex
    folder = staging / variant_id
    export_onnx(model, folder / ONNX_NAME, shape, opset)
    return Candidate(variant_id, method, folder, params, macs, num_params)


def _int8(baseline: Candidate, data: PreparedDataset, cfg: OptimizeConfig, staging: Path) -> Candidate:
    from dcloop.optimize._quantize import calibration_images, quantize_int8

    x_train, _ = data.arrays("train")
    images = calibration_images(x_train, cfg.calibration_size)
    variant_id = uuid.uuid4().hex
    folder = staging / variant_id
    quantize_int8(
        baseline.folder / ONNX_NAME,
        folder / ONNX_NAME,
        images,
        data.image_shape,
        method=cfg.calibration_method,
        per_channel=cfg.per_channel,
    )
    params = {
        "format": "QDQ static int8",
        "calibration_images": len(images),
        "calibration_method": cfg.calibration_method,
        "per_channel": cfg.per_channel,
    }
    return Candidate(
        variant_id, "int8", folder, params, baseline.macs, baseline.num_params, parent=baseline.id
    )


def train_recipe(run_config: dict[str, Any], **changes: Any) -> TrainConfig:
    """The run's recipe for a fine-tune or a student: every step at full size (no progressive resizing:
    the pruned model recovers at the size it answers at, and a teacher sees the student's images)."""
    fixed = {"early_stopping_patience": 0, "resize_share": 0.0}
    return TrainConfig.model_validate({**run_config, **fixed, **changes})


def retry_hint(method: str) -> str:
    # the step trains with the run's recorded recipe; with `train.threads: 0` (the default) torch
    # takes its thread count from OMP_NUM_THREADS, and one thread avoids the known kernel crashes
    return f"Retry with OMP_NUM_THREADS=1 set, or leave {method} out with --methods."


def _prune(
    model: nn.Module, run_config: dict[str, Any], data: PreparedDataset, cfg: OptimizeConfig, staging: Path
) -> Candidate:
    from dcloop.optimize._prune import count_macs_params, prune_channels
    from dcloop.train import fit_model
    from dcloop.train._isolated import call_isolated
    from dcloop.train._views import with_views, without_views

    plain, views = without_views(model)  # pruned and fine-tuned alone; exported with the run's views
    pruned = prune_channels(plain, data.image_shape, cfg.prune_flops, cfg.prune_norm, cfg.prune_round_to)
    tuned = pruned.model
    if cfg.finetune_epochs:
        recipe = train_recipe(run_config, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, warmup_epochs=0.0)
        hint = retry_hint("prune")
        fit = call_isolated(
            "prune fine-tune", hint, fit_model, pruned.model, data, recipe, progress_label="fine-tune pruned"
        )
        tuned = fit.model.cpu().eval()
    tuned = with_views(tuned, views).eval()
    macs, num_params = count_macs_params(tuned, data.image_shape)
    params = {
        "keep_flops": cfg.prune_flops,
        "norm": cfg.prune_norm,
        "round_to": cfg.prune_round_to,
        "flops_ratio": pruned.flops_ratio,
        "params_before": pruned.params_before,
        "finetune_epochs": cfg.finetune_epochs,
        "finetune_lr": cfg.finetune_lr,
    }
    return _export(tuned, "prune", staging, data.image_shape, cfg.opset, params, macs, num_params)


def _distill(
    teacher: nn.Module, run_config: dict[str, Any], data: PreparedDataset, cfg: OptimizeConfig, staging: Path
) -> Candidate:
    from dcloop.optimize._distill import fit_student
    from dcloop.optimize._prune import count_macs_params
    from dcloop.train import create_model
    from dcloop.train._isolated import call_isolated
    from dcloop.train._views import without_views

    channels, height, _ = data.image_shape
    student = create_model(cfg.student, channels, data.num_classes, height, width=cfg.student_width)
    recipe = train_recipe(
        run_config,
        model=cfg.student,
        width=cfg.student_width,
        tta="none",
        epochs=cfg.distill_epochs,
        loss="cross_entropy",
    )
    teacher = without_views(teacher)[0]  # one view per batch: the views would multiply the fit's cost
    args = (student, teacher, data, recipe, cfg.temperature, cfg.alpha)
    trained = call_isolated("distill", retry_hint("distill"), fit_student, *args).model.cpu().eval()
    macs, num_params = count_macs_params(trained, data.image_shape)
    params = {
        "student": cfg.student,
        "width": cfg.student_width,
        "temperature": cfg.temperature,
        "alpha": cfg.alpha,
        "epochs": cfg.distill_epochs,
    }
    return _export(trained, "distill", staging, data.image_shape, cfg.opset, params, macs, num_params)
