"""Optimization targets for text: minilm-l6 fine-tuned on Debian's fortunes, made deployable for CPUs.

Fine-tunes minilm-l6 on the built-in `fortunes` source (unless --run names a trained text run), runs
`optimize` (fp32 export, its fused transformer graph, dynamic int8 of the fused graph, a distilled
student keeping 3 of the 6 encoder layers) and prints the variant table and the targets:
  int8  : >= 3.5x smaller file, >= 2x batch-32 throughput vs the fp32 export, accuracy drop <= 1 pt
  fused : throughput and accuracy against the export (reported, no target)
  distill: size / speed / accuracy of the student against the export (reported, no target)

    .venv/bin/python benchmarks/text_optimize.py [--workspace DIR] [--run RUN] [--epochs N]
        [--max-length N] [--threads N] [--distill-epochs N] [--no-distill] [--quick [--train-texts N] [--test-texts N]]

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


def _workspace(folder: Path, threads: int, distill_epochs: int) -> Any:
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
        ws.config,
        "optimize",
        {"threads": threads, "latency_runs": 100, "throughput_batches": 5, "distill_epochs": distill_epochs},
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
    parser.add_argument("--distill-epochs", type=int, default=1, help="Epochs of student training.")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="No fine-tuning: minilm-l6's pretrained encoder with a head fitted on its frozen embeddings "
        "of --train-texts train texts; the export, fused graph and dynamic int8 measured the same way.",
    )
    parser.add_argument("--train-texts", type=int, default=600, help="Train texts fitting the --quick head.")
    parser.add_argument("--test-texts", type=int, default=0, help="--quick: test texts measured (0: all).")
    parser.add_argument("--no-distill", action="store_true", help="Leave the distilled student out (faster).")
    args = parser.parse_args()

    from dcloop.optimize import optimize
    from dcloop.optimize._report import columns, variant_row
    from dcloop.train import train

    ws = _workspace(
        args.workspace or Path(tempfile.mkdtemp(prefix="dcloop-bench-text-")),
        args.threads,
        args.distill_epochs,
    )
    if args.quick:
        _quick(ws, args.max_length, args.threads, args.train_texts, args.test_texts)
        return
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


def _quick(ws: Any, max_length: int, threads: int, train_texts: int, test_texts: int) -> None:
    """minilm-l6 with a fitted head (frozen encoder), then export / fused / int8 under measure_onnx."""
    import numpy as np
    import torch

    from dcloop.data import encode_texts, load_dataset
    from dcloop.optimize._measure import measure_onnx, text_inputs
    from dcloop.optimize._onnx import onnx_session
    from dcloop.optimize._text_onnx import export_text_onnx, max_abs_diff, text_onnx_logits, torch_text_logits
    from dcloop.optimize._text_quantize import bert_dims, fuse_transformer, quantize_dynamic_int8
    from dcloop.train import create_model, text_tokenizer

    torch.set_num_threads(threads)
    data = load_dataset(ws)
    tokenizer = text_tokenizer("minilm-l6")
    model = create_model("minilm-l6", num_classes=data.num_classes).eval()
    x_train, y_train = data.arrays("train")
    pick = np.random.default_rng(0).permutation(len(x_train))[:train_texts]
    start = time.perf_counter()
    ids, lengths = encode_texts(tokenizer, list(x_train[pick]), max_length)
    features = _embeddings(model, ids, lengths)
    _fit_head(model.head, features, torch.from_numpy(y_train[pick]))
    print(f"head fitted on {len(pick)} frozen embeddings in {time.perf_counter() - start:.0f}s")
    x_test, y_test = data.arrays("test")
    if test_texts:
        keep = np.random.default_rng(1).permutation(len(x_test))[:test_texts]
        x_test, y_test = x_test[keep], y_test[keep]
    test_ids, test_lengths = encode_texts(tokenizer, list(x_test), max_length)
    inputs = text_inputs(test_ids, test_lengths)
    folder = Path(tempfile.mkdtemp(prefix="dcloop-bench-text-quick-"))
    export_text_onnx(model, folder / "fp32.onnx", max_length)
    torch_logits = torch_text_logits(model, test_ids, test_lengths)
    parity = max_abs_diff(
        torch_logits, text_onnx_logits(onnx_session(folder / "fp32.onnx"), test_ids, test_lengths)
    )
    print(f"export parity (max |logit diff|, test texts): {parity:.2e}")
    fusions = fuse_transformer(folder / "fp32.onnx", folder / "fused.onnx", *bert_dims(model))  # type: ignore[misc]
    print(f"fusions: {fusions}")
    quantize_dynamic_int8(folder / "fused.onnx", folder / "int8.onnx", per_channel=True)
    torch_pred = torch_logits.argmax(1)
    print(f"PyTorch test accuracy: {100 * float((torch_pred == y_test).mean()):.2f}% on {len(y_test)} texts")
    rows, measured = [], {}
    for name in ("fp32", "fused", "int8"):
        m, pred = measure_onnx(
            folder / f"{name}.onnx",
            inputs,
            y_test,
            data.classes,
            threads=threads,
            latency_runs=50,
            throughput_batches=5,
        )
        measured[name] = m
        rows.append(
            [
                name,
                round(100 * m["accuracy"], 2),
                round(100 * float((pred == torch_pred).mean()), 2),
                round(m["size_bytes"] / 2**20, 1),
                round(m["latency_p50_ms"], 1),
                round(m["throughput_ips"], 1),
            ]
        )
    _print(["variant", "accuracy %", "agreement %", "size MiB", "p50 ms", "text/s @32"], rows)
    base, int8 = measured["fp32"], measured["int8"]
    size, speed = base["size_bytes"] / int8["size_bytes"], int8["throughput_ips"] / base["throughput_ips"]
    drop = 100 * (base["accuracy"] - int8["accuracy"])
    fused = measured["fused"]["throughput_ips"] / base["throughput_ips"]
    _print(
        ["target", "measured", "goal", "met"],
        [
            ["int8 file size vs fp32 export", f"{size:.2f}", ">= 3.5x", "yes" if size >= 3.5 else "NO"],
            [
                "int8 batch-32 throughput vs fp32 export",
                f"{speed:.2f}",
                ">= 2x",
                "yes" if speed >= 2 else "NO",
            ],
            ["int8 accuracy drop (pts)", f"{drop:.2f}", "<= 1", "yes" if drop <= 1 else "NO"],
            ["fused fp32 throughput vs export", f"{fused:.2f}", "report", ""],
        ],
    )


def _embeddings(model: Any, ids: Any, lengths: Any, batch_size: int = 32) -> Any:
    import torch

    from dcloop.optimize._text_onnx import text_batches

    with torch.no_grad():
        return torch.cat(
            [
                model.embed(torch.from_numpy(f["input_ids"]), torch.from_numpy(f["attention_mask"]))
                for f in text_batches(ids, lengths, batch_size)
            ]
        )


def _fit_head(head: Any, features: Any, labels: Any, steps: int = 300) -> None:
    """Multinomial logistic regression of the head on fixed features (full-batch Adam, L2)."""
    import torch

    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(head(features), labels).backward()
        optimizer.step()
    head.requires_grad_(False)


def _print(columns: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in columns], *[[str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for index, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
