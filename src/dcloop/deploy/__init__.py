"""Deployment: the model registry and promotion gate, the ONNX Runtime server with dynamic batching.

Heavy pieces (onnxruntime, FastAPI) load on first use of the names that need them.
"""

from __future__ import annotations

from typing import Any

from dcloop._lazy import lazy_attribute

_EXPORTS: dict[str, str] = {
    "ModelVersion": "dcloop.store.registry",
    "AliasMove": "dcloop.store.registry",
    "register_model_version": "dcloop.deploy.registry",
    "get_model_version": "dcloop.deploy.registry",
    "list_model_versions": "dcloop.deploy.registry",
    "model_aliases": "dcloop.deploy.registry",
    "set_alias": "dcloop.deploy.registry",
    "alias_history": "dcloop.deploy.registry",
    "rollback": "dcloop.deploy.registry",
    "promote": "dcloop.deploy.promotion",
    "Promotion": "dcloop.deploy.promotion",
    "GateRefused": "dcloop.deploy.promotion",
    "evaluate_gate": "dcloop.deploy.gate",
    "GateDecision": "dcloop.deploy.gate",
    "OnnxModel": "dcloop.deploy.runtime",
    "load_model": "dcloop.deploy.runtime",
    "create_app": "dcloop.deploy.server",
    "in_process_client": "dcloop.deploy._client",
    "serve": "dcloop.deploy.launch",
    "set_alert": "dcloop.deploy.metrics",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _EXPORTS)
