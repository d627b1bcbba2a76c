"""Optimization targets on the default cat-vs-dog workload: static int8, pruning, distillation.

Trains the default recipe (unless --run names a trained run), runs `optimize` with every method and
prints the variant table and the targets:
  int8  : >= 3.5x smaller file, >= 1.5x batch-256 throughput vs fp32 ONNX, accuracy drop <= 0.5 pts
  prune : >= 50% fewer FLOPs, accuracy drop <= 0.5 pts
  distill: size / speed / accuracy of the student against the teacher (reported, no target)

    .venv/bin/python benchmarks/optimize_targets.py [--workspace DIR] [--run RUN] [--epochs N] [--threads N]

Timings depend on the machine and its load; run it on a quiet machine for stable numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _workspace(folder: Path, threads: int) -> object:
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.store import datasets as store_datasets
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(folder)
    if not store_datasets.list_datasets(ws.store):
        import_source(ws, "animal-mnist", classes=["cat", "dog"])
    cfg = config.with_overrides(ws.config, "optimize", {"threads": threads})
    return open_workspace(ws.root, config.with_overrides(cfg, "tracking", {"mlflow": False}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace", type=Path, default=None, help="Workspace folder (default: a new temp one)."
    )
    parser.add_argument(
        "--run", default=None, help="A trained run to optimize (default: train the default recipe)."
    )
    parser.add_argument("--epochs", type=int, default=None, help="Override train.epochs for the teacher.")
    parser.add_argument(
        "--threads", type=int, default=2, help="ONNX Runtime intra-op threads (optimize.threads)."
    )
    args = parser.parse_args()

    from dcloop.optimize import optimize
    from dcloop.optimize._report import COLUMNS, variant_row
    from dcloop.train import train

    ws = _workspace(args.workspace or Path(tempfile.mkdtemp(prefix="dcloop-bench-opt-")), args.threads)
    run_id = args.run
    if run_id is None:
        recipe = (
            ws.config.train
            if args.epochs is None
            else ws.config.train.model_copy(update={"epochs": args.epochs})
        )
        start = time.perf_counter()
        run = train(ws, recipe, name="bench-teacher")
        run_id = run.id
        print(
            f"teacher {run.id[:12]} ({recipe.model}, {recipe.epochs} epochs) trained in {time.perf_counter() - start:.0f}s"
        )
    start = time.perf_counter()
    result = optimize(ws, run_id)
    print(f"optimize took {time.perf_counter() - start:.0f}s; report: {result.report_path}")
    _print(COLUMNS, [variant_row(v) for v in result.variants])

    base, by_method = result.variants[0].metrics, {v.method: v.metrics for v in result.variants}
    int8, pruned, student = by_method["int8"], by_method["prune"], by_method["distill"]
    targets = [
        (
            "int8 file size vs fp32",
            base["size_bytes"] / int8["size_bytes"],
            ">= 3.5x",
            base["size_bytes"] / int8["size_bytes"] >= 3.5,
        ),
        (
            "int8 batch-256 throughput vs fp32",
            int8["throughput_ips"] / base["throughput_ips"],
            ">= 1.5x",
            int8["throughput_ips"] / base["throughput_ips"] >= 1.5,
        ),
        ("int8 accuracy drop (pts)", int8["accuracy_drop"], "<= 0.5", int8["accuracy_drop"] <= 0.5),
        (
            "pruned FLOPs vs fp32",
            pruned["flops"] / base["flops"],
            "<= 0.5",
            pruned["flops"] / base["flops"] <= 0.5,
        ),
        ("pruned accuracy drop (pts)", pruned["accuracy_drop"], "<= 0.5", pruned["accuracy_drop"] <= 0.5),
        ("student file size vs teacher", base["size_bytes"] / student["size_bytes"], "report", None),
        ("student throughput vs teacher", student["throughput_ips"] / base["throughput_ips"], "report", None),
        ("student accuracy drop (pts)", student["accuracy_drop"], "report", None),
    ]
    _print(
        ["target", "measured", "goal", "met"],
        [[n, f"{v:.3f}", g, "" if ok is None else ("yes" if ok else "NO")] for n, v, g, ok in targets],
    )
    print(f"recommended: {result.recommended.id[:12]} ({result.recommended.method}) by rule: {result.rule}")


def _print(columns: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in columns], *[[str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for index, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
