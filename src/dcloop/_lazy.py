"""Lazy exports: a package names its public API up front and imports each name's module on first use.

A package's ``__init__`` keeps a table ``{public name: module that defines it}`` and forwards its
module-level ``__getattr__`` here, so ``import dcloop`` stays light (torch, onnxruntime and SQLAlchemy
load with the first stage that needs them). A name is either an object of a module or a subpackage,
never both: ``dcloop.optimize`` is always the subpackage (its stage function is
``dcloop.optimize.optimize``), whatever was imported before.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from typing import Any


def lazy_attribute(
    package: str, name: str, exports: Mapping[str, str], subpackages: Collection[str] = ()
) -> Any:
    """``package.name``: the object ``name`` of its module in ``exports``, or the subpackage ``name``."""
    if name in subpackages:
        return importlib.import_module(f"{package}.{name}")
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
