"""Training, a pruned fine-tune and a distillation pass under every CPU code path a machine can emulate.

torch picks its ATen kernels by ``ATEN_CPU_CAPABILITY`` and oneDNN its JIT kernels by
``ONEDNN_MAX_CPU_ISA``; capping either makes this machine run what an older CPU runs. ``precision:
auto`` picks bf16 only where oneDNN computes it natively, so capping oneDNN below AVX512_CORE_BF16
also emulates a CPU without native bf16. Each path runs in its own process under ``MALLOC_CHECK_=3``
(glibc's malloc-debug library preloaded; it aborts on the first heap inconsistency), and any
non-zero or signal exit fails. A oneDNN cap above what the CPU has falls back to its best, so on an
AVX2 machine the AVX-512 oneDNN paths repeat AVX2. ATen does not fall back: forced to AVX-512
kernels on a CPU without them it dies of SIGILL, so that path is run only where the CPU has AVX-512.

Slow (about 30 s a path on two busy cores): `make cpu-paths`, part of `make test`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcloop.train._loop import resolve_precision

JOB = Path(__file__).with_name("cpu_path_job.py")
NATIVE = torch.backends.cpu.get_cpu_capability()  # read before any test sets ATEN_CPU_CAPABILITY
PATHS = [
    ({"ATEN_CPU_CAPABILITY": "default"}, "fp32"),
    ({"ATEN_CPU_CAPABILITY": "avx2"}, "fp32"),
    *([({"ATEN_CPU_CAPABILITY": "avx512"}, "fp32")] if NATIVE.startswith("AVX512") else []),
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "fp32"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "fp32"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "bf16"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "auto"),  # a CPU without native bf16
    ({}, "auto"),  # this CPU's own choice
]


@pytest.mark.slow
@pytest.mark.parametrize(("env", "precision"), PATHS, ids=[f"{e}-{p}" for e, p in PATHS])
def test_training_steps_survive_the_cpu_path(
    env: dict[str, str], precision: str, heap_checked_env: dict[str, str]
) -> None:
    full = {**heap_checked_env, **env}
    full["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, str(JOB), precision],
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode} under {env}:\n{done.stderr[-4000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["finite"]
    assert report["views_mirror_diff"] < 1e-4  # the 10 views answer an image as its mirror image
    if precision == "auto":
        expected = "bf16" if not env and _native_bf16() else "fp32"
        assert report["precision"] == expected


def _native_bf16() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


@pytest.mark.parametrize(
    ("cap", "allowed"),
    [
        ("AVX2", False),
        ("avx512_core", False),
        ("AVX512_CORE_BF16", True),
        ("AVX512_CORE_AMX", True),
        ("", True),
    ],
)
def test_auto_precision_follows_the_onednn_isa_cap(monkeypatch, cap: str, allowed: bool) -> None:
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    expected = "bf16" if allowed and _native_bf16() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
