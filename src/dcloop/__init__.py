"""dcloop: run the whole life of a model as one closed loop.

The stage functions are importable from here; heavy modules load on first use, so ``import dcloop``
stays light. The stage subpackages are attributes too (``dcloop.optimize`` is the optimization
subpackage, its stage function ``dcloop.optimize.optimize``), the same before and after any import.
"""

from __future__ import annotations

from typing import Any

from dcloop._lazy import lazy_attribute

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "DcloopError": "dcloop.errors",
    "ConfigError": "dcloop.errors",
    "DataError": "dcloop.errors",
    "NotFoundError": "dcloop.errors",
    "StoreError": "dcloop.errors",
    "TrainError": "dcloop.errors",
    "Config": "dcloop.config",
    "Workspace": "dcloop.workspace",
    "init_workspace": "dcloop.workspace",
    "open_workspace": "dcloop.workspace",
    "JobMeter": "dcloop.meter",
    "meter_for": "dcloop.meter",
    "plan_training": "dcloop.plan",
    "plan_serving": "dcloop.plan",
    "plan_image_serving": "dcloop.plan",
    "accelerators_for_days": "dcloop.plan",
    "largest_compute_optimal_model": "dcloop.plan",
    "validate_published": "dcloop.plan",
    "load_catalog": "dcloop.plan",
    # `dcloop.train` and `dcloop.optimize` are subpackages; their stage functions are
    # `dcloop.train.train` and `dcloop.optimize.optimize`.
    "fit_model": "dcloop.train",
    "FitResult": "dcloop.train",
    "load_trained": "dcloop.train",
    "TrainedModel": "dcloop.train",
    "evaluate": "dcloop.train",
    "predict_arrays": "dcloop.train",
    "classification_metrics": "dcloop.train",
    "create_model": "dcloop.train",
    "list_models": "dcloop.train",
    "PreparedDataset": "dcloop.data",
    "import_source": "dcloop.data",
    "prepare_dataset": "dcloop.data",
    "load_dataset": "dcloop.data",
    "list_sources": "dcloop.data",
    "list_datasets": "dcloop.data",
    "get_dataset": "dcloop.data",
    "extend_dataset": "dcloop.data",
    "tokenize_dataset": "dcloop.data",
    "encode_texts": "dcloop.data",
    "TokenArrays": "dcloop.data",
    "export_onnx": "dcloop.optimize",
    "check_parity": "dcloop.optimize",
    "tune": "dcloop.optimize",
    "list_variants": "dcloop.optimize",
    "get_variant": "dcloop.optimize",
    "OptimizationResult": "dcloop.optimize",
    "TuneResult": "dcloop.optimize",
    # deployment: registry, gate, server
    "register_model_version": "dcloop.deploy",
    "get_model_version": "dcloop.deploy",
    "list_model_versions": "dcloop.deploy",
    "promote": "dcloop.deploy",
    "rollback": "dcloop.deploy",
    "alias_history": "dcloop.deploy",
    "evaluate_gate": "dcloop.deploy",
    "GateDecision": "dcloop.deploy",
    "ModelVersion": "dcloop.deploy",
    "create_app": "dcloop.deploy",
    "serve": "dcloop.deploy",
    # feedback store
    "log_predictions": "dcloop.feedback",
    "add_labels": "dcloop.feedback",
    "labelled_predictions": "dcloop.feedback",
    "forget": "dcloop.feedback",
    "prediction_stats": "dcloop.feedback",
    "monitor": "dcloop.feedback",
    "MonitorResult": "dcloop.feedback",
    "retrain": "dcloop.feedback",
    "RetrainResult": "dcloop.feedback",
    "run_loop": "dcloop.loop",
    "LoopTurn": "dcloop.loop",
    "watch": "dcloop.loop",
    "request_turn": "dcloop.loop",
    "run_demo": "dcloop.demo",
    "DemoResult": "dcloop.demo",
}

# stage subpackages, imported on first access (``dcloop.optimize.tune``)
_SUBPACKAGES = ("data", "train", "optimize", "deploy", "feedback", "loop", "plan", "store")

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _EXPORTS, _SUBPACKAGES)
