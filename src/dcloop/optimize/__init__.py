"""Optimization stage: ONNX export, static int8 quantization, pruning, distillation, and
hyperparameter search; for text models the export with its tokenizer bundle, the fused transformer
graph and dynamic int8. Heavy libraries (torch, onnxruntime, optuna) load inside the functions."""

from __future__ import annotations

from dcloop.optimize._onnx import check_parity, export_onnx
from dcloop.optimize._optimize import OptimizationResult, optimize
from dcloop.optimize._text_onnx import check_text_parity, export_text_onnx, write_text_bundle
from dcloop.optimize._tune import tune
from dcloop.optimize._tune_report import TuneResult
from dcloop.optimize._variants import get_variant, list_variants
from dcloop.store.variants import VariantRecord

__all__ = [
    "OptimizationResult",
    "TuneResult",
    "VariantRecord",
    "check_parity",
    "check_text_parity",
    "export_onnx",
    "export_text_onnx",
    "get_variant",
    "list_variants",
    "optimize",
    "tune",
    "write_text_bundle",
]
