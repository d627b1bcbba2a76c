"""Training kernels on this CPU: which settings make the default model's training steps faster.

Usage: python benchmarks/train_kernels.py [--model resnet-s] [--width 16] [--steps 20] [--repeats 3]
                                          [--threads 1] [--skip-compile]

Trains the model on random 28x28 one-channel images with the default recipe's augmentation and AdamW,
one variant at a time, the variants interleaved over --repeats rounds, and reports training images
per CPU second (the process's CPU time, and its children's for the C++ compiler: a machine shared
with other work stretches wall time far more than CPU time) of each variant's best round, as a ratio
to the first row (the default recipe's kernels before the optimizers ran fused). Variants: the
optimizer's update kernels (foreach, fused), precision (fp32, bf16 autocast), channels-last on/off,
batch 64 and 256, and torch.compile (inductor) with its one-time cost: wall and CPU seconds of the
first step, which compiles. Also the measured fp32 and bf16 matmul peaks and the share of them each
variant reaches (FLOPs per training image counted by torch.utils.flop_counter).
Prints one table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS: dict[str, dict[str, Any]] = {
    "bf16, foreach AdamW, channels-last, batch 64 (the default before)": {"fused": False},
    "bf16, fused AdamW (the default now; precision: auto picks bf16 here)": {},
    "bf16, fused AdamW, contiguous layout": {"channels_last": False},
    "bf16, fused AdamW, batch 256": {"batch": 256},
    "fp32, foreach AdamW": {"fused": False, "bf16": False},
    "fp32, fused AdamW (precision: auto picks fp32 without bf16 units)": {"bf16": False},
    "fp32, fused AdamW, contiguous layout": {"bf16": False, "channels_last": False},
    "fp32, fused AdamW, torch.compile": {"bf16": False, "compile": True},
    "bf16, fused AdamW, torch.compile": {"compile": True},
}


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (inductor's C++ compiler)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def trainer(
    model_name: str,
    width: int,
    fused: bool = True,
    bf16: bool = True,
    channels_last: bool = True,
    batch: int = 64,
    compile: bool = False,
) -> Any:
    """One training step of the variant as a function of nothing (random batches of a fixed pool)."""
    import torch
    from torch.nn import functional as F

    from dcloop.config import TrainConfig
    from dcloop.train import create_model
    from dcloop.train._augment import build_augment
    from dcloop.train._layout import to_channels_last
    from dcloop.train._recipe import _param_groups

    torch.manual_seed(0)
    model = create_model(model_name, 1, 10, 28, width=width)
    if channels_last:
        to_channels_last(model, torch.device("cpu"))
    net = torch.compile(model, dynamic=False) if compile else model
    kernels = {"fused": True} if fused else {"foreach": True}
    optimizer = torch.optim.AdamW(_param_groups(model, 5e-4), lr=1e-3, **kernels)
    augment = build_augment(**TrainConfig().augment.model_dump(exclude={"enabled"}))
    pool = torch.randint(0, 256, (4096, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (4096,))

    def step() -> None:
        index = torch.randint(0, len(pool), (batch,))
        images = augment(pool[index].float().div_(255.0))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(images)
        F.cross_entropy(logits.float(), labels[index]).backward()
        optimizer.step()

    return step


def main() -> None:
    from _table import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet-s")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each variant's best is shown")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile row")
    args = parser.parse_args()

    import torch

    from dcloop.train import create_model
    from train_targets import peak_flops, train_flops_per_image

    torch.set_num_threads(args.threads)
    variants = {k: v for k, v in VARIANTS.items() if not (args.skip_compile and v.get("compile"))}
    steps: dict[str, Any] = {}
    first: dict[str, tuple[float, float]] = {}
    for name, options in variants.items():  # build and take the first step (compiles) once
        steps[name] = trainer(args.model, args.width, **options)
        t0, c0 = time.perf_counter(), cpu_seconds()
        steps[name]()
        first[name] = (time.perf_counter() - t0, cpu_seconds() - c0)
    best = dict.fromkeys(variants, 0.0)
    for _ in range(args.repeats):
        for name, options in variants.items():
            for _ in range(2):
                steps[name]()  # warm: the layouts' and batch size's kernels are chosen
            c0 = cpu_seconds()
            for _ in range(args.steps):
                steps[name]()
            best[name] = max(best[name], options.get("batch", 64) * args.steps / (cpu_seconds() - c0))

    flops = train_flops_per_image(create_model(args.model, 1, 10, 28, width=args.width), (1, 28, 28))
    peaks = {p: peak_flops(args.threads, p, clock=cpu_seconds) for p in ("fp32", "bf16")}
    base = best[next(iter(variants))]
    rows = []
    for name, options in variants.items():
        peak = peaks["bf16" if options.get("bf16", True) else "fp32"]
        wall, cpu = first[name]
        rows.append(
            [
                name,
                f"{best[name]:,.0f}",
                f"{best[name] / base:.2f}x",
                f"{best[name] * flops / peak:.1%}",
                f"{wall:.1f} / {cpu:.1f}",
            ]
        )
    header = ["variant", "images per CPU s", "vs before", "of matmul peak", "first step s (wall / CPU)"]
    print(
        f"{args.model} w{args.width}, {flops / 1e6:.1f} MFLOP per training image; threads={args.threads}; "
        f"matmul peak per CPU s: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} "
        f"GFLOP/s; load={os.getloadavg()[0]:.1f} at {time.strftime('%H:%M')}"
    )
    print_table(header, rows)


if __name__ == "__main__":
    main()
