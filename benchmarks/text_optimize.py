"""Optimization targets for text: minilm-l6 fine-tuned on Debian's fortunes, made deployable for CPUs.

Fine-tunes minilm-l6 on the built-in `fortunes` source (unless --run names a trained text run), runs
`optimize` (fp32 export, its fused transformer graph, dynamic int8 of the fused graph, a distilled
student keeping 3 of the 6 encoder layers) and prints the variant table and the targets:
  int8  : >= 3.5x smaller file, >= 2x batch-32 throughput vs the fp32 export, accuracy drop <= 1 pt
  fused : throughput and accuracy against the export (reported, no target)
  distill: size / speed / accuracy of the student against the export (reported, no target)

    .venv/bin/python benchmarks/text_optimize.py [--workspace DIR] [--run RUN] [--epochs N]
        [--max-length N] [--threads N] [--no-distill]

Throughput is texts per second at batch 32, each batch padded to its longest text, best of 3
rounds. Timings depend on the machine and its load; run it on a quiet machine for stable numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _workspace(folder: Path, threads: int) -> Any:
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.store import datasets as store_datasets
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(folder)
    if not store_datasets.list_datasets(ws.store):
        start = time.perf_counter()
        import_source(ws, "fortunes")
        print(f"imported fortunes in {time.perf_counter() - start:.0f}s")
    cfg = config.with_overrides(
        ws.config, "optimize", {"threads": threads, "latency_runs": 100, "throughput_batches": 5}
    )
    return open_workspace(ws.root, config.with_overrides(cfg, "tracking", {"mlflow": False}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace", type=Path, default=None, help="Workspace folder (default: a new temp one)."
    )
    parser.add_argument(
        "--run", default=None, help="A trained text run to optimize (default: fine-tune minilm-l6)."
    )
    parser.add_argument("--epochs", type=int, default=2, help="Fine-tuning epochs of the teacher.")
    parser.add_argument("--max-length", type=int, default=64, help="Tokens per text of the teacher.")
    parser.add_argument(
        "--threads", type=int, default=2, help="ONNX Runtime intra-op threads (optimize.threads)."
    )
    parser.add_argument("--no-distill", action="store_true", help="Leave the distilled student out (faster).")
    args = parser.parse_args()

    from dcloop.optimize import optimize
    from dcloop.optimize._report import columns, variant_row
    from dcloop.train import train

    ws = _workspace(args.workspace or Path(tempfile.mkdtemp(prefix="dcloop-bench-text-")), args.threads)
    run_id = args.run
    if run_id is None:
        recipe = ws.config.train.model_copy(
            update={"model": "minilm-l6", "epochs": args.epochs, "max_length": args.max_length}
        )
        start = time.perf_counter()
        run = train(ws, recipe, name="bench-text-teacher")
        run_id = run.id
        print(
            f"teacher {run.id[:12]} (minilm-l6, {args.epochs} epochs, max_length {args.max_length}) "
            f"trained in {time.perf_counter() - start:.0f}s; test accuracy {run.metrics.get('test_accuracy')}"
        )
    methods = ["onnx", "int8"] + ([] if args.no_distill else ["distill"])
    start = time.perf_counter()
    result = optimize(ws, run_id, methods=methods)
    print(f"optimize took {time.perf_counter() - start:.0f}s; report: {result.report_path}")
    _print(columns(result.variants), [variant_row(v) for v in result.variants])
    for variant in result.variants:
        if variant.method == "fused":
            print(f"fusions: {variant.params['fusions']}")

    base, by_method = result.variants[0].metrics, {v.method: v.metrics for v in result.variants}
    int8 = by_method["int8"]
    targets: list[tuple[str, float, str, bool | None]] = [
        ("int8 file size vs fp32 export", base["size_bytes"] / int8["size_bytes"], ">= 3.5x", None),
        (
            "int8 batch-32 throughput vs fp32 export",
            int8["throughput_ips"] / base["throughput_ips"],
            ">= 2x",
            None,
        ),
        ("int8 accuracy drop (pts)", int8["accuracy_drop"], "<= 1", int8["accuracy_drop"] <= 1.0),
    ]
    targets[0] = (*targets[0][:3], targets[0][1] >= 3.5)
    targets[1] = (*targets[1][:3], targets[1][1] >= 2.0)
    if "fused" in by_method:
        fused = by_method["fused"]
        targets.append(
            (
                "fused fp32 throughput vs export",
                fused["throughput_ips"] / base["throughput_ips"],
                "report",
                None,
            )
        )
        targets.append(("fused fp32 accuracy drop (pts)", fused["accuracy_drop"], "report", None))
    if "distill" in by_method:
        student = by_method["distill"]
        targets.append(
            ("student file size vs export", base["size_bytes"] / student["size_bytes"], "report", None)
        )
        targets.append(
            (
                "student throughput vs export",
                student["throughput_ips"] / base["throughput_ips"],
                "report",
                None,
            )
        )
        targets.append(("student accuracy drop (pts)", student["accuracy_drop"], "report", None))
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
