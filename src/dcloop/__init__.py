"""dcloop: run the whole life of a model as one closed loop.

The stage functions are importable from here; heavy modules load on first use, so ``import dcloop``
stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

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
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dcloop' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
