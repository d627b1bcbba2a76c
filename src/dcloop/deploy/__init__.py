"""Deployment: the model registry and promotion gate, the ONNX Runtime server with dynamic batching.

Heavy pieces (onnxruntime, FastAPI) load on first use of the names that need them.
"""

from __future__ import annotations

from typing import Any

from dcloop._lazy import lazy_attribute

_EXPORTS: dict[str, str] = {
    "ModelVersion": "dcloop.store.registry",
    "AliasMove": "dcloop.store.registry",
    "register_model_version": "dcloop.deploy._registry",
    "get_model_version": "dcloop.deploy._registry",
    "list_model_versions": "dcloop.deploy._registry",
    "model_aliases": "dcloop.deploy._registry",
    "set_alias": "dcloop.deploy._registry",
    "alias_history": "dcloop.deploy._registry",
    "rollback": "dcloop.deploy._registry",
    "promote": "dcloop.deploy._promotion",
    "Promotion": "dcloop.deploy._promotion",
    "GateRefused": "dcloop.deploy._promotion",
    "evaluate_gate": "dcloop.deploy._gate",
    "GateDecision": "dcloop.deploy._gate",
    "OnnxModel": "dcloop.deploy._runtime",
    "load_model": "dcloop.deploy._runtime",
    "create_app": "dcloop.deploy._server",
    "in_process_client": "dcloop.deploy._client",
    "serve": "dcloop.deploy._launch",
    "set_alert": "dcloop.deploy._metrics",
    "mirror_registry": "dcloop.deploy._mirror",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _EXPORTS)
