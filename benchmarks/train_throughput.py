"""The default recipe's training throughput through the CLI, as a user runs it, before and after.

Usage: python benchmarks/train_throughput.py [--seeds 3] [--epochs 0] [--classes cat,dog]
                                             [--variants before,now,one-thread,...] [--other-processes 0]

Imports Animal-MNIST (cat vs dog by default; --classes all for 10 classes) into a workspace once, then
runs `dcloop train --format json --seed S` for every variant, the variants interleaved within each seed
(a machine shared with other work changes speed from minute to minute, less within a round), and
prints a table: training images/s (median, min-max), its ratio to "before" (the median over seeds of
the same-seed ratio), the share of the machine's matmul peak that rate reaches (training FLOPs per
image, counted by torch.utils.flop_counter, times images/s, over the best bf16 or fp32 matmul on all
cores, whichever precision the recipe's `auto` picks here), test accuracy (mean, min) and wall seconds
of the command.

Variants:
  before       OMP_WAIT_POLICY=PASSIVE, which dcloop's CLI set for every command until now: idle
               OpenMP threads sleep at once, and waking them for every small kernel costs more than
               the second core gives; glibc's malloc defaults (DCLOOP_KEEP_FREED_MEMORY=0); and the
               job meter's memory sampler as it was: every 0.1 s it listed the process tree with
               psutil's children(), which reads the parent of every process on the machine; and every
               step at full size (--resize-share 0);
  now          OpenMP's own default (a short spin, then sleep), which the CLI now leaves to training,
               freed memory kept for the next step (dcloop.train._memory), and the sampler reading the
               kernel's per-task children lists (dcloop.meter.tree_rss_bytes), and the first half of
               the schedule on images scaled to 24x24 (train.resize_share, progressive resizing);
  full-size    now, with every step at full size (--resize-share 0): what progressive resizing gives;
  resize-20    now, with the first half on images scaled to 20x20 (--resize-scale 0.72);
  batch-128    now, with batch 128 and the learning rate scaled by its square root (0.0042);
  scan-sampler now, with the memory sampler as it was;
  one-thread   now, with OMP_NUM_THREADS=1 (train.threads is 0: torch's own count);
  nproc-2      now, with --nproc 2 (two data-parallel processes of one thread each, gloo);
  malloc-default, one-thread-malloc-default, nproc-2-malloc-default
               now, one-thread and nproc-2 with glibc's malloc defaults: what keeping freed memory
               gives.
Prints one table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
DCLOOP = Path(sys.executable).with_name("dcloop")
# a variant's environment: these names are read by this script, not by dcloop
SCAN_SAMPLER = "BENCH_MEMORY_SAMPLER_SCANS"  # "1": the memory sampler as it was (see the docstring)
VARIANTS: dict[str, tuple[dict[str, str | None], list[str]]] = {
    "before": (
        {"OMP_WAIT_POLICY": "PASSIVE", "DCLOOP_KEEP_FREED_MEMORY": "0", SCAN_SAMPLER: "1"},
        ["--resize-share", "0"],
    ),
    "now": ({"OMP_WAIT_POLICY": None}, []),
    "full-size": ({"OMP_WAIT_POLICY": None}, ["--resize-share", "0"]),
    "resize-20": ({"OMP_WAIT_POLICY": None}, ["--resize-scale", "0.72"]),
    "scan-sampler": ({"OMP_WAIT_POLICY": None, SCAN_SAMPLER: "1"}, []),
    "one-thread": ({"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": "1"}, []),
    "nproc-2": ({"OMP_WAIT_POLICY": None}, ["--nproc", "2"]),
    "batch-128": ({"OMP_WAIT_POLICY": None}, ["--batch-size", "128", "--lr", "0.0042"]),
}
# the same with glibc's malloc defaults: what keeping freed memory gives each
VARIANTS |= {
    "malloc-default" if name == "now" else f"{name}-malloc-default": (
        {**env, "DCLOOP_KEEP_FREED_MEMORY": "0"},
        args,
    )
    for name, (env, args) in list(VARIANTS.items())
    if name in ("now", "one-thread", "nproc-2")
}


SCANNING_CLI = (
    "import sys, dcloop.meter as m; m.tree_rss_bytes = m.psutil_tree_rss_bytes; sys.argv[0] = 'dcloop'; "
    "from dcloop.cli import main; main()"
)


def run(cwd: Path, env: dict[str, str | None], args: list[str]) -> dict[str, Any]:
    """One `dcloop train` in ``cwd`` under ``env`` (None: unset); its JSON record and wall seconds."""
    environ = {k: v for k, v in os.environ.items() if env.get(k, "") is not None}
    environ |= {k: v for k, v in env.items() if v is not None}
    command = [str(DCLOOP)]
    if environ.pop(SCAN_SAMPLER, None) == "1":  # dcloop's CLI with the meter's old process-tree reading
        command = [sys.executable, "-c", SCANNING_CLI]
    t0 = time.perf_counter()
    done = subprocess.run(
        [*command, "train", "--format", "json", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"dcloop train {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout) | {"command_s": time.perf_counter() - t0}


def _flops_and_peak(model_name: str) -> tuple[float, float, str]:
    """Training FLOPs per 28x28 one-channel image of the recipe's model, and the matmul peak (all
    cores) in the precision `precision: auto` picks on this machine."""
    from dcloop.config import TrainConfig
    from dcloop.train import create_model
    from dcloop.train._loop import resolve_device, resolve_precision
    from train_targets import peak_flops, train_flops_per_image

    recipe = TrainConfig()
    model = create_model(model_name, 1, 2, 28, width=recipe.width)
    precision = resolve_precision(recipe.precision, resolve_device(recipe.device))
    return train_flops_per_image(model, (1, 28, 28)), peak_flops(os.cpu_count() or 1, precision), precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds; each is one round of every variant")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep)")
    parser.add_argument("--classes", default="cat,dog", help="comma-separated classes, or all")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    parser.add_argument(
        "--other-processes",
        type=int,
        default=0,
        help="idle processes to keep running meanwhile, as on a shared node (they cost the scanning "
        "memory sampler its time)",
    )
    args = parser.parse_args()
    idle = [subprocess.Popen(["sleep", "86400"]) for _ in range(args.other_processes)]
    try:
        _measure(args)
    finally:
        for proc in idle:
            proc.kill()
            proc.wait()


def _measure(args: argparse.Namespace) -> None:
    import psutil

    from _table import print_table

    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; expected some of {', '.join(VARIANTS)}")

    ws = Path(tempfile.mkdtemp(prefix="dcloop-throughput-"))
    subprocess.run([str(DCLOOP), "init"], cwd=ws, check=True, capture_output=True)
    source = ["data", "import", "animal-mnist"]
    if args.classes != "all":
        source += ["--classes", args.classes]
    subprocess.run([str(DCLOOP), *source], cwd=ws, check=True, capture_output=True)
    extra = ["--epochs", str(args.epochs)] if args.epochs else []
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for seed in range(args.seeds):
        for name in variants:
            env, flags = VARIANTS[name]
            record = run(ws, env, [*flags, *extra, "--seed", str(seed)])
            runs[name].append(record)
            print(
                f"seed {seed} {name}: {record['images_per_s']:,.0f} images/s, "
                f"accuracy {record['accuracy']:.4f}, {record['command_s']:.1f} s",
                flush=True,
            )

    base = runs.get("before")
    flops, peak, precision = _flops_and_peak(runs[variants[0]][0]["model"])
    header = [
        "variant",
        "images/s median (min-max)",
        "vs before",
        f"of {precision} matmul peak",
        "test accuracy mean (min)",
        "command s",
    ]
    rows = []
    for name in variants:
        speeds = [r["images_per_s"] for r in runs[name]]
        ratio = (
            f"{statistics.median(r['images_per_s'] / b['images_per_s'] for r, b in zip(runs[name], base, strict=True)):.2f}x"
            if base
            else "-"
        )
        accuracy = [r["accuracy"] for r in runs[name]]
        rows.append(
            [
                name,
                f"{statistics.median(speeds):,.0f} ({min(speeds):,.0f}-{max(speeds):,.0f})",
                ratio,
                f"{statistics.median(speeds) * flops / peak:.1%}",
                f"{statistics.mean(accuracy):.4f} ({min(accuracy):.4f})",
                f"{statistics.median(r['command_s'] for r in runs[name]):.1f}",
            ]
        )
    first = runs[variants[0]][0]
    print(
        f"\n{first['model']}, {first['epochs_run']} epochs, classes {args.classes}, {args.seeds} seeds; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at {time.strftime('%H:%M')}, "
        f"{len(psutil.pids())} processes running; "
        f"{flops / 1e6:.1f} MFLOP per training image, {precision} matmul peak {peak / 1e9:.0f} GFLOP/s"
    )
    print_table(header, rows)


if __name__ == "__main__":
    main()
