"""Optimization stage: ONNX export, static int8 quantization, pruning, distillation, and
hyperparameter search. Heavy libraries (torch, onnxruntime, optuna) load inside the functions."""

from __future__ import annotations

from dcloop.optimize._onnx import check_parity, export_onnx
from dcloop.optimize._optimize import OptimizationResult, optimize
from dcloop.optimize._tune import tune
from dcloop.optimize._tune_report import TuneResult
from dcloop.optimize._variants import get_variant, list_variants
from dcloop.store.variants import VariantRecord

__all__ = [
    "OptimizationResult",
    "TuneResult",
    "VariantRecord",
    "check_parity",
    "export_onnx",
    "get_variant",
    "list_variants",
    "optimize",
    "tune",
]
