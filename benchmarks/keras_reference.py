"""dcloop against the reference Keras pipeline, side by side, on the same PNG folders and test split.

Usage: python benchmarks/keras_reference.py [--tasks cat-dog,10-class] [--seeds 3] [--threads 2]
                                            [--fast-share 0.1] [--goal-budget 110] [--goal-width 32]
                                            [--set FIELD=VALUE ...]

1. Makes its own virtualenv (benchmarks/.keras-venv, git-ignored) with tensorflow-cpu 2.21 and Keras 3
   once, and runs the reference design there (benchmarks/keras_reference/keras_train.py: three conv
   layers, Adam, batch 32, 10 epochs, ImageDataGenerator augmentation, grayscale).
2. Writes Animal-MNIST, as dcloop prepares it (cleaned, stratified 80/20 test split), to PNG folders
   train/<class>/ and test/<class>/ once; Keras reads those folders, and dcloop imports them into a
   workspace (the folder source keeps train/ and test/; dcloop holds 10% of train/ for validation).
3. Trains dcloop's default recipe and reports, per task: test accuracy (mean over seeds, minimum),
   training time, and the time to the reference's TEST accuracy: dcloop's test accuracy is evaluated
   at every epoch end (observed only; nothing is chosen by it) and the clock counts the epochs'
   training and validation. It also trains with `budget_s` = the reference's training time, with
   `budget_s` = --fast-share of it (reaching the reference's accuracy there is that many times sooner
   with nothing observed on the test split), and for 10 classes with `budget_s` = --goal-budget.
4. Beside the wall seconds, the CPU seconds of each system's process (all its threads; dcloop's less
   its test evaluations) to the same point: on a machine shared with other work, wall time stretches
   with the load of the moment, CPU seconds much less, so their ratio is the steadier comparison.
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

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

HERE = Path(__file__).resolve().parent
VENV = HERE / ".keras-venv"
KERAS_SCRIPT = HERE / "keras_reference" / "keras_train.py"
TASKS = {"cat-dog": ["cat", "dog"], "10-class": None}


def keras_python() -> Path:
    """The virtualenv's python, made with tensorflow-cpu and Keras 3 the first time."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        (VENV / ".gitignore").write_text("*\n", encoding="utf-8")
    probe = [str(python), "-c", "import keras, tensorflow"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "tensorflow-cpu==2.21.0", "keras>=3", "pillow", "scipy"], check=True)
    return python


def export_pngs(task: str) -> Path:
    """Animal-MNIST as dcloop prepares it, as train/ and test/ PNG folders (written once)."""
    root = VENV / "data" / task
    if (root / "done").exists():
        return root
    from PIL import Image

    from dcloop.data import import_source, load_dataset
    from dcloop.workspace import init_workspace

    ws = init_workspace(Path(tempfile.mkdtemp(prefix="dcloop-export-")))
    import_source(ws, "animal-mnist", classes=TASKS[task])
    data = load_dataset(ws)
    for split, members in (("train", ["train", "val"]), ("test", ["test"])):
        for part in members:
            for index in data.splits[part]:
                folder = root / split / data.classes[int(data.y[index])]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(data.x[index, 0]).save(folder / f"{index:05d}.png")
    (root / "done").write_text("", encoding="utf-8")
    return root


def run_keras(root: Path, seed: int, threads: int) -> dict[str, Any]:
    command = [
        str(keras_python()),
        str(KERAS_SCRIPT),
        str(root),
        "--seed",
        str(seed),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_dcloop(data: Any, recipe: Any, goal: float) -> dict[str, Any]:
    """Fit; test accuracy at every validation (observed only); seconds until it first reaches ``goal``.

    Validations come at epoch ends and, with ``train.val_every_steps``, within epochs too: the time to
    the goal is then read at that finer step, and those validations' own time is counted in it.
    """
    from dcloop.train import create_model, fit_model
    from dcloop.train._loop import seed_everything
    from dcloop.train._metrics import predict_arrays

    channels, size, _ = data.image_shape
    seed_everything(recipe.seed)
    model = create_model(recipe.model, channels, data.num_classes, size, width=recipe.width)
    x_test, y_test = data.arrays("test")
    nan = float("nan")
    # wall seconds of the finished epochs, and CPU seconds of the process, both less the test
    # evaluations (the share of the machine other work leaves the run does not change CPU seconds)
    clock = {"s": 0.0, "to_goal": nan, "cpu0": time.process_time(), "cpu_to_goal": nan, "observing": 0.0}

    def observe(epoch_s: float) -> None:
        """Test now, ``epoch_s`` into the epoch (wall, with this epoch's earlier test evaluations)."""
        t, cpu = time.perf_counter(), time.process_time()
        pred, _ = predict_arrays(model, x_test)
        if float((pred == y_test).mean()) >= goal and clock["to_goal"] != clock["to_goal"]:
            clock["to_goal"] = clock["s"] + epoch_s - clock["observing"]
            clock["cpu_to_goal"] = cpu - clock["cpu0"]
        clock["cpu0"] += time.process_time() - cpu
        clock["observing"] += time.perf_counter() - t
        model.train()

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        within = clock["observing"]  # this epoch's test evaluations before its end, inside epoch_s
        observe(metrics["epoch_s"])
        clock["s"] += metrics["epoch_s"] - within
        clock["observing"] = 0.0

    result = fit_model(
        model,
        data,
        recipe,
        on_epoch=on_epoch,
        on_check=lambda epoch, metrics: observe(metrics["epoch_s"]),
        progress_label=recipe.model,
    )
    pred, _ = predict_arrays(result.model, x_test)
    return {
        "accuracy": float((pred == y_test).mean()),
        "train_s": result.spent["elapsed_s"],
        "to_goal_s": clock["to_goal"],
        "cpu_to_goal_s": clock["cpu_to_goal"],
        "images_per_s": result.images_per_s,
        "epochs": len(result.history),
    }


def _add(rows: list[list[str]], row: list[str]) -> None:
    """Keep a table row, and print it now: a long run shows its rows as they are measured."""
    rows.append(row)
    print("  ".join(row), flush=True)


def _acc(runs: list[dict[str, Any]], key: str = "accuracy") -> str:
    values = [r[key] for r in runs]
    spread = f" (min {min(values):.4f})" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread}"


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if r[key] == r[key]]
    return statistics.mean(values) if values else float("nan")


def main() -> None:
    from _table import print_table
    from train_targets import recipe_fields

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="cat-dog,10-class", help="comma-separated: cat-dog, 10-class")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of every row")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of both systems")
    parser.add_argument("--fast-share", type=float, default=0.1, help="budget row: this share of Keras' time")
    parser.add_argument(
        "--goal-budget", type=float, default=110.0, help="10-class budget row, seconds (0: off)"
    )
    parser.add_argument("--goal-width", type=int, default=32, help="model width of the 10-class budget row")
    parser.add_argument("--skip-default", action="store_true", help="leave out the default-recipe row")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a dcloop recipe field"
    )
    args = parser.parse_args()

    import torch

    from dcloop.config import TrainConfig
    from dcloop.data import import_source, load_dataset
    from dcloop.workspace import init_workspace

    torch.set_num_threads(args.threads)
    base = TrainConfig.model_validate(
        TrainConfig(threads=args.threads).model_dump() | recipe_fields(args.set)
    )
    seeds = range(args.seeds)
    rows: list[list[str]] = []
    for task in args.tasks.split(","):
        root = export_pngs(task)
        ws = init_workspace(Path(tempfile.mkdtemp(prefix=f"dcloop-{task}-")))
        import_source(ws, str(root), name=task)
        data = load_dataset(ws)
        keras = [run_keras(root, seed, args.threads) for seed in seeds]
        goal, keras_s = _mean(keras, "test_accuracy"), _mean(keras, "train_s")
        keras_cpu = _mean(keras, "cpu_s")
        _add(
            rows,
            [
                task,
                "Keras reference, 10 epochs",
                _acc(keras, "test_accuracy"),
                f"{keras_s:.1f}",
                "",
                "",
                f"{keras_cpu:.1f}",
                "",
            ],
        )
        if not args.skip_default:
            runs = [run_dcloop(data, base.model_copy(update={"seed": s}), goal) for s in seeds]
            to_goal = _mean(runs, "to_goal_s")
            reached = sum(r["to_goal_s"] == r["to_goal_s"] for r in runs)
            label = f"dcloop {base.model} w{base.width}, {base.epochs} epochs"
            sooner = f"{to_goal:.1f} ({reached}/{len(runs)})"
            cpu_to_goal = _mean(runs, "cpu_to_goal_s")
            _add(
                rows,
                [
                    task,
                    label,
                    _acc(runs),
                    f"{_mean(runs, 'train_s'):.1f}",
                    sooner,
                    f"{keras_s / to_goal:.1f}x",
                    f"{cpu_to_goal:.1f}",
                    f"{keras_cpu / cpu_to_goal:.1f}x",
                ],
            )
        for share in (1.0, args.fast_share):
            budget = keras_s * share
            runs = [
                run_dcloop(data, base.model_copy(update={"seed": s, "budget_s": budget}), goal) for s in seeds
            ]
            label = f"dcloop {base.model} w{base.width}, --budget {budget:.1f}s ({share:g} of Keras)"
            points = 100 * (_mean(runs, "accuracy") - goal)
            _add(
                rows,
                [task, label, _acc(runs), f"{_mean(runs, 'train_s'):.1f}", "", f"{points:+.1f} pts", "", ""],
            )
        if task == "10-class" and args.goal_budget:
            recipe = base.model_copy(update={"budget_s": args.goal_budget, "width": args.goal_width})
            runs = [run_dcloop(data, recipe.model_copy(update={"seed": s}), goal) for s in seeds]
            label = f"dcloop {base.model} w{args.goal_width}, --budget {args.goal_budget:g}s"
            _add(rows, [task, label, _acc(runs), f"{_mean(runs, 'train_s'):.1f}", "", "", "", ""])
        print(
            f"{task}: {len(data.splits['train'])} train, {len(data.splits['val'])} val, "
            f"{len(data.splits['test'])} test images; Keras {keras[0]['keras']} / TF {keras[0]['tensorflow']}, "
            f"{_mean(keras, 'images_per_s'):,.0f} images/s",
            flush=True,
        )

    header = [
        "task",
        "system / recipe",
        "test acc",
        "train s",
        "s to Keras acc",
        "vs Keras",
        "CPU s",
        "vs (CPU)",
    ]
    print(
        f"threads={args.threads} seeds={args.seeds} load={os.getloadavg()[0]:.1f} at {time.strftime('%H:%M')}"
    )
    print_table(header, rows)


if __name__ == "__main__":
    main()
