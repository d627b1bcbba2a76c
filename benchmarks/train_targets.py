"""Training targets on Animal-MNIST: accuracy, throughput, time-to-accuracy and share of peak FLOP/s.

Usage: python benchmarks/train_targets.py [--seeds 3] [--threads 2] [--skip-10class] [--epochs N]
                                         [--tenclass-epochs 12] [--tenclass-width 32] [--tenclass-budget 110]
                                         [--tenclass-seeds 3] [--tenclass-set batch_size=256]
                                         [--tenclass-set tta=flip] [--tenclass-val-fraction 0]
                                         [--no-test-checks] [--set budget_s=60] [--set compile=true]

Measures, on this machine, with augmentation on as in the recipe:
  * cat-vs-dog (classes 2 vs 4, stratified 80/20 train/test): test accuracy of the default model and
    recipe (mean over seeds) and of seed-cnn (the reference Keras design) with dcloop's recipe;
  * 10-class: test accuracy of the default recipe cut to --tenclass-epochs (the target allows ~2 minutes);
  * images/s, seconds of training until the test accuracy first reaches 95% and 99% (checked after
    every epoch; the test split is only observed, never used to choose anything; with a budget
    those checks run on its clock, so training gets a little less than the budget);
  * model FLOPs per training image (torch.utils.flop_counter) and the fraction of the machine's
    measured matmul peak (in the training precision: bf16 where `precision: auto` picks it) that
    training reaches.
Prints one table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def peak_flops(
    threads: int,
    precision: str = "fp32",
    size: int = 2048,
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best matmul FLOP/s in the training precision over a few repeats: the machine's practical peak.

    ``clock`` is wall time by default; a CPU-time clock gives the peak per CPU second, which other
    work on a shared machine does not lower."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.rand(size, size, dtype=dtype), torch.rand(size, size, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(repeats):
        t0 = clock()
        a @ b
        best = max(best, 2 * size**3 / (clock() - t0))
    return best


def train_flops_per_image(model: Any, shape: tuple[int, int, int], batch: int = 64) -> float:
    """Forward + backward FLOPs of one training image (FlopCounterMode counts matmuls/convolutions)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    x = torch.rand(batch, *shape)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def measure(data: Any, recipe: Any, checks: bool = True) -> dict[str, float]:
    """Fit with ``recipe``; test accuracy after every epoch (``checks``); time to 95/99%; throughput;
    FLOPs. Test predictions include the recipe's test-time views (``train.tta``), as a run's do."""
    import torch

    from dcloop.train import create_model, fit_model
    from dcloop.train._loop import seed_everything
    from dcloop.train._metrics import predict_arrays
    from dcloop.train._views import with_views

    channels, size, _ = data.image_shape
    flops = train_flops_per_image(
        create_model(recipe.model, channels, data.num_classes, size, width=recipe.width), data.image_shape
    )
    seed_everything(recipe.seed)
    model = create_model(recipe.model, channels, data.num_classes, size, width=recipe.width)
    x_test, y_test = data.arrays("test")
    elapsed = 0.0
    reached: dict[float, float] = {}

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal elapsed
        elapsed += metrics["epoch_s"]
        if not checks:
            return
        pred, _ = predict_arrays(with_views(model, recipe.tta), x_test)
        accuracy = float((pred == y_test).mean())
        for goal in (0.95, 0.99):
            if accuracy >= goal and goal not in reached:
                reached[goal] = elapsed
        model.train()

    torch.set_num_threads(recipe.threads or os.cpu_count() or 1)
    result = fit_model(model, data, recipe, on_epoch=on_epoch, progress_label=recipe.model)
    pred, _ = predict_arrays(with_views(result.model, recipe.tta), x_test)
    return {
        "accuracy": float((pred == y_test).mean()),
        "images_per_s": result.images_per_s,
        "train_s": result.train_s,
        "epoch_s_total": elapsed,
        "to_95_s": reached.get(0.95, float("nan") if checks else float("inf")),
        "to_99_s": reached.get(0.99, float("nan") if checks else float("inf")),
        "flops_per_image": flops,
        "epochs": len(result.history),
    }


def _row(label: str, runs: list[dict[str, float]], peak: float) -> list[str]:
    acc = [r["accuracy"] for r in runs]
    ips = statistics.mean(r["images_per_s"] for r in runs)
    flops = runs[0]["flops_per_image"]
    spread = f" (min {min(acc):.4f}, n={len(acc)})" if len(acc) > 1 else ""
    return [
        label,
        f"{statistics.mean(acc):.4f}{spread}",
        f"{ips:,.0f}",
        f"{statistics.mean(r['train_s'] for r in runs):.1f}",
        _first(runs, "to_95_s"),
        _first(runs, "to_99_s"),
        f"{flops / 1e6:.1f}",
        f"{ips * flops / peak:.1%}",
    ]


def _first(runs: list[dict[str, float]], key: str) -> str:
    if any(r[key] == float("inf") for r in runs):
        return "not checked"
    values = [r[key] for r in runs if r[key] == r[key]]
    return f"{statistics.mean(values):.1f} ({len(values)}/{len(runs)})" if values else "not reached"


def recipe_fields(items: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` command-line items as recipe fields (values read as YAML: 128, 0.004, true)."""
    import yaml

    return {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in items)}


def main() -> None:
    from _table import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the default cat-vs-dog recipe")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep)")
    parser.add_argument("--model", default=None, help="override the recipe's model")
    parser.add_argument("--width", type=int, default=0, help="override the recipe's width (0: keep)")
    parser.add_argument("--ema", type=float, default=-1.0, help="override the recipe's ema_decay (-1: keep)")
    parser.add_argument("--precision", default=None, help="override the recipe's precision (fp32, bf16)")
    parser.add_argument(
        "--channels-last", choices=["on", "off"], default=None, help="override the recipe's layout"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override any recipe field"
    )
    parser.add_argument("--skip-seed-cnn", action="store_true", help="leave out the seed-cnn row")
    parser.add_argument("--skip-10class", action="store_true", help="only the cat-vs-dog task")
    parser.add_argument(
        "--tenclass-epochs", type=int, default=12, help="epochs of the 10-class run (~2 min here)"
    )
    parser.add_argument(
        "--tenclass-width", type=int, default=0, help="model width of the 10-class run (0: the recipe's)"
    )
    parser.add_argument(
        "--tenclass-budget",
        type=float,
        default=0.0,
        help="10-class run: train.budget_s instead of epochs (0: off)",
    )
    parser.add_argument("--tenclass-seeds", type=int, default=1, help="seeds of the 10-class run")
    parser.add_argument(
        "--tenclass-val-fraction",
        type=float,
        default=None,
        help="data.val_fraction of the 10-class import (0: train on every non-test image)",
    )
    parser.add_argument(
        "--no-test-checks",
        action="store_true",
        help="test only the final weights, not after every epoch (the checks run on a budget's clock)",
    )
    parser.add_argument(
        "--tenclass-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a recipe field in the 10-class run only",
    )
    args = parser.parse_args()

    from dcloop.config import TrainConfig, with_overrides
    from dcloop.data import import_source, load_dataset
    from dcloop.workspace import init_workspace, open_workspace

    root = Path(tempfile.mkdtemp(prefix="dcloop-bench-"))
    catdog_ws = init_workspace(root / "catdog")
    import_source(catdog_ws, "animal-mnist", classes=["cat", "dog"])
    catdog = load_dataset(catdog_ws)
    base = TrainConfig(threads=args.threads)
    overrides = {"epochs": args.epochs or None, "model": args.model, "width": args.width or None}
    overrides["ema_decay"] = args.ema if args.ema >= 0 else None
    overrides["precision"] = args.precision
    overrides["channels_last"] = None if args.channels_last is None else args.channels_last == "on"
    overrides |= recipe_fields(args.set)
    base = TrainConfig.model_validate(
        base.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    )
    from dcloop.train._loop import resolve_device, resolve_precision

    precision = resolve_precision(base.precision, resolve_device(base.device))
    peak = peak_flops(args.threads, precision)
    rows = []
    checks = not args.no_test_checks
    default_runs = [measure(catdog, base.model_copy(update={"seed": s}), checks) for s in range(args.seeds)]
    rows.append(_row(f"cat-vs-dog {base.model} w{base.width}, {base.epochs} epochs", default_runs, peak))
    if not args.skip_seed_cnn:
        seed_cnn = measure(catdog, base.model_copy(update={"model": "seed-cnn"}), checks)
        rows.append(_row("cat-vs-dog seed-cnn (dcloop recipe)", [seed_cnn], peak))
    if not args.skip_10class:
        all_ws = init_workspace(root / "all")
        if args.tenclass_val_fraction is not None:
            held = {"val_fraction": args.tenclass_val_fraction}
            all_ws = open_workspace(all_ws.root, with_overrides(all_ws.config, "data", held))
            label_data = f", val_fraction {args.tenclass_val_fraction:g}"
        else:
            label_data = ""
        import_source(all_ws, "animal-mnist")
        ten = base.model_copy(
            update={"epochs": args.tenclass_epochs, "width": args.tenclass_width or base.width}
        )
        label = f"10-class {base.model} w{ten.width}, {ten.epochs} epochs"
        if args.tenclass_budget:
            ten = ten.model_copy(update={"budget_s": args.tenclass_budget})
            label = f"10-class {base.model} w{ten.width}, --budget {args.tenclass_budget:g}s"
        if args.tenclass_set:
            ten = TrainConfig.model_validate(ten.model_dump() | recipe_fields(args.tenclass_set))
            label += ", " + ", ".join(args.tenclass_set)
        label += label_data
        all_data = load_dataset(all_ws)
        runs = [
            measure(all_data, ten.model_copy(update={"seed": s}), checks) for s in range(args.tenclass_seeds)
        ]
        rows.append(_row(label, runs, peak))

    header = [
        "task / model",
        "test acc",
        "images/s",
        "train s",
        "s to 95%",
        "s to 99%",
        "MFLOP/img",
        "of peak",
    ]
    print(
        f"threads={args.threads}  measured {precision} matmul peak={peak / 1e9:.1f} GFLOP/s  recipe={base.model_dump(exclude={'augment'})}"
    )
    print_table(header, rows)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
