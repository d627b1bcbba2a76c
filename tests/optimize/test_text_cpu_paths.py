"""The text int8 path (export, fused graph, dynamic int8, ONNX Runtime) under emulated CPU paths.

torch picks its ATen kernels by ``ATEN_CPU_CAPABILITY`` and oneDNN its JIT kernels by
``ONEDNN_MAX_CPU_ISA``; capping both at AVX2 makes this machine run what an AVX2-only CPU runs.
Each path runs in its own process under ``MALLOC_CHECK_=3`` (glibc's malloc-debug library
preloaded; it aborts on the first heap inconsistency); any non-zero or signal exit fails, the logits
must stay finite, the fp32 and fused files equal PyTorch's, and int8 answer alike on both paths
(its accuracy: test_text_onnx.py).

Slow (about 3 minutes a path on two busy cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

JOB = Path(__file__).with_name("text_cpu_path_job.py")
PATHS = [
    {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    {},  # this CPU's own choice
]


def _run(env: dict[str, str], heap_checked_env: dict[str, str]) -> dict[str, object]:
    full = {**heap_checked_env, **env}
    full["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, str(JOB)], env=full, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode} under {env}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_text_int8_runs_under_every_cpu_path(heap_checked_env: dict[str, str]) -> None:
    reports = [_run(env, heap_checked_env) for env in PATHS]
    for report in reports:
        assert report["finite"]
        assert report["fp32_diff"] <= 1e-4 and report["fused_diff"] <= 1e-4  # type: ignore[operator]
        assert report["fusions"]["Attention"] == 2  # type: ignore[index]
    # ONNX Runtime picks its int8 kernels itself: the emulated path answers exactly as this CPU does
    emulated, native = (np.concatenate([np.asarray(b) for b in r["int8_logits"]]) for r in reports)  # type: ignore[attr-defined]
    assert np.abs(emulated - native).max() <= 1e-5
