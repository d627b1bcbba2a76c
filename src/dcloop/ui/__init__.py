"""The dashboard (`dcloop ui`): the loop, data, runs, models, monitoring, serving and planning as web
pages, read live from the workspace store. FastAPI loads on first use of ``create_app``."""

from __future__ import annotations

from typing import Any

from dcloop._lazy import lazy_attribute

_EXPORTS: dict[str, str] = {"create_app": "dcloop.ui._app", "serve_ui": "dcloop.ui._launch"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _EXPORTS)
