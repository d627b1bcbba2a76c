"""``train.compile``: torch.compile (inductor) for the training model, eager where it cannot run.

Inductor turns the model into generated C++ (CPU) or Triton (GPU) kernels; on CPU it needs a C++
compiler, found as torch finds it (``$CXX``, else ``g++``/``c++``/``clang++`` on PATH). Without one the
run says so in one line and trains eagerly. The compile happens on the first step of each shape and
is paid once per process; the loop charges that first step to the ``compile`` phase of the run record.
"""

from __future__ import annotations

import logging
import os
import shutil

import torch
from torch import nn

log = logging.getLogger(__name__)


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would call on CPU, or None when there is none."""
    named = os.environ.get("CXX")
    candidates = [named] if named else ["g++", "c++", "clang++"]
    for name in candidates:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def maybe_compile(net: nn.Module, device: torch.device, enabled: bool) -> tuple[nn.Module, bool]:
    """``net`` compiled when ``enabled`` and possible on ``device``; and whether it was."""
    if not enabled:
        return net, False
    if device.type == "cpu" and cxx_compiler() is None:
        where = f"CXX={os.environ['CXX']!r}" if os.environ.get("CXX") else "g++, c++ or clang++ on PATH"
        log.warning("train.compile: no C++ compiler (%s); training eagerly.", where)
        return net, False
    # one static graph per batch shape: the last, smaller batch of an epoch compiles once more
    return torch.compile(net, dynamic=False), True  # type: ignore[return-value]
