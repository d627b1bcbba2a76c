"""Reproducer: oneDNN corrupts the heap computing a 1x1 strided convolution's weight gradient in
channels-last when the input has fewer channels than one SIMD block.

Torch only (no dcloop import in the case itself): one ``nn.Conv2d(ic, oc, 1, stride=2)``, input and
weight in channels-last, a few backward passes. Each case runs in its own process under
``MALLOC_CHECK_=3`` (glibc aborts on the first heap inconsistency), so a crash is an exit code, and
the table prints the exit code per oneDNN ISA cap (``ONEDNN_MAX_CPU_ISA``; caps above what the CPU
has fall back to its best). On torch 2.13.0 CPU (oneDNN 3.12.0) with AVX-512 the channels-last
cases with ic < 16, an odd batch and 2+ threads die with -11 (SIGSEGV) or -6 (SIGABRT, "double free
or corruption"); with AVX2 the cases with ic < 8 die or hang at any batch. The same convolution in
contiguous (NCHW) layout, at stride 1, or as a 3x3, passes. dcloop keeps exactly these convolutions
contiguous when it trains channels-last (``dcloop.train._layout``).

Usage: python benchmarks/onednn_1x1_strided_crash.py [--quick]
Single case: python benchmarks/onednn_1x1_strided_crash.py --case MB IC OC HW STRIDE LAYOUT STEPS
(``ONEDNN_VERBOSE=1`` shows the kernel: ``jit_1x1:avx512_core,backward_weights``.)
"""

from __future__ import annotations

import argparse
import ctypes.util
import os
import subprocess
import sys

TIMEOUT_S = 60
# since glibc 2.34 MALLOC_CHECK_ works only with this library preloaded (None: older glibc, or none)
MALLOC_DEBUG = ctypes.util.find_library("c_malloc_debug")
ISAS = ("AVX2", "AVX512_CORE", "AVX512_CORE_BF16")


def run_case(mb: int, ic: int, oc: int, hw: int, stride: int, layout: str, steps: int) -> None:
    import torch

    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    conv = torch.nn.Conv2d(ic, oc, 1, stride, bias=False).to(memory_format=fmt)
    for _ in range(steps):
        x = torch.rand(mb, ic, hw, hw).contiguous(memory_format=fmt)
        conv(x).sum().backward()


def spawn(case: list[int | str], isa: str, threads: int) -> str:
    env = {**os.environ, "MALLOC_CHECK_": "3", "ONEDNN_MAX_CPU_ISA": isa, "OMP_NUM_THREADS": str(threads)}
    if MALLOC_DEBUG:  # after any library the caller preloads, as tests/conftest.py's heap_checked_env
        env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), MALLOC_DEBUG]))
    cmd = [sys.executable, __file__, "--case", *map(str, case)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return "hang"
    return "ok" if done.returncode == 0 else str(done.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=7, metavar="ARG")
    parser.add_argument("--quick", action="store_true", help="the failing case and its controls only")
    args = parser.parse_args()
    if args.case:
        mb, ic, oc, hw, stride = map(int, args.case[:5])
        run_case(mb, ic, oc, hw, stride, args.case[5], int(args.case[6]))
        return
    cases: list[tuple[int, int, int, int, int, str, int]] = [
        (25, 8, 16, 28, 2, "nhwc", 20),  # resnet-s width 8, batch 25: the shortcut's weight gradient
        (24, 8, 16, 28, 2, "nhwc", 20),  # even batch
        (25, 8, 16, 28, 2, "nchw", 20),  # contiguous layout
        (25, 8, 16, 28, 1, "nhwc", 20),  # unit stride
        (25, 32, 64, 28, 2, "nhwc", 20),  # whole SIMD blocks
    ]
    if not args.quick:
        cases += [
            (25, 4, 8, 28, 2, "nhwc", 20),
            (2, 4, 8, 28, 2, "nhwc", 20),
            (25, 12, 32, 28, 2, "nhwc", 20),
        ]
    import torch

    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, cpu count {os.cpu_count()}")
    header = f"{'mb':>3} {'ic':>3} {'oc':>3} {'stride':>6} {'layout':>6} {'threads':>7} " + " ".join(
        f"{isa:>16}" for isa in ISAS
    )
    print(header)
    for case in cases:
        for threads in (1, 2):
            codes = [spawn(list(case), isa, threads) for isa in ISAS]
            mb, ic, oc, _, stride, layout, _ = case
            row = f"{mb:>3} {ic:>3} {oc:>3} {stride:>6} {layout:>6} {threads:>7} "
            print(row + " ".join(f"{c:>16}" for c in codes), flush=True)


if __name__ == "__main__":
    main()
