"""The loop controller on the demo's shifted stream: the time from the first alert to the new champion
serving, with each part's share, and the controller's idle cost while nothing changes.

A champion is trained on the history of three Animal-MNIST classes (the demo's --fast setup) and
serves negatives (the demo's shift) with true labels; then one `watch` look sees the alerts, runs the
turn (resumed after its gate: deploy, feedback, monitor, retrain) and the server switches to the new
champion. Idle cost: CPU seconds per look with nothing new, over the default poll interval.

Target: idle cost under 1% of one core.

Usage: .venv/bin/python benchmarks/loop_controller.py [--looks 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from dcloop._demo_traffic import TrafficClient, shift_images
from dcloop.config import LoopPolicyConfig
from dcloop.deploy._registry import get_model_version
from dcloop.deploy._runtime import load_model
from dcloop.loop import STEPS, list_turns, run_loop
from dcloop.loop._controller import watch
from dcloop.workspace import init_workspace, open_workspace

CLASSES = ["bird", "elephant", "giraffe"]
CONFIG = {
    "tracking": {"mlflow": False},
    "train": {"model": "seed-cnn", "width": 32, "epochs": 4, "batch_size": 64, "threads": 1, "seed": 0},
    "optimize": {"latency_runs": 10, "throughput_batches": 1},
    "gate": {"min_improvement": -1.0, "max_class_regression": 5.0, "class_regression_p": 0.05},
    "loop": {
        "model": "animals",
        "retrain_min_labels": 50,
        "triggers": {"alert_held_s": 0.0},
        "policy": {"cooldown_s": 0.0},
    },
}


def split(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """History (an .npz source, 60% of each class) and the future images, shuffled."""
    from dcloop.data._intake import SOURCES

    world = SOURCES.get("animal-mnist")(None, CLASSES, 28, "grayscale")
    rng = np.random.default_rng(0)
    past, later = [], []
    for index in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(world.y == index))
        past.append(members[: int(len(members) * 0.6)])
        later.append(members[int(len(members) * 0.6) :])
    keep, rest = np.sort(np.concatenate(past)), rng.permutation(np.concatenate(later))
    path = folder / "history.npz"
    np.savez(path, x=world.x[keep], y=world.y[keep], classes=np.array(CLASSES))
    return path, shift_images("negative", world.x[rest]), world.y[rest]


def accuracy(ws, ref: str, x: np.ndarray, y: np.ndarray) -> float:
    return float((load_model(get_model_version(ws, ref)).predict_classes(x) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--looks", type=int, default=200, help="idle looks measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ws = init_workspace(Path(folder) / "ws")
        (ws.root / "dcloop.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
        ws = open_workspace(ws.root)
        from dcloop.data import import_source

        source, x, y = split(Path(folder))
        import_source(ws, str(source), name="animals")
        run_loop(ws, stop_after="gate")  # the champion, animals@1
        stream, held_out = slice(0, len(x) * 3 // 5), slice(len(x) * 3 // 5, None)
        client = TrafficClient(ws, "animals@champion").open()
        _, ids, _ = client.predict(x[stream])
        client.label(ids, y[stream])
        before = accuracy(ws, "animals@champion", x[held_out], y[held_out])

        start = time.perf_counter()
        decisions = watch(ws, polls=1)
        turned = time.perf_counter()
        switched_to = client.switch(
            "animals@champion"
        )  # what `serve --follow-champion` does on its next tick
        client.predict(x[held_out][:1])
        serving = time.perf_counter()
        after = accuracy(ws, "animals@champion", x[held_out], y[held_out])
        client.close()

        turn = list_turns(ws)[-1]
        ran = [s for s in turn.steps if s.step in STEPS[STEPS.index("gate") + 1 :]]  # run by the controller
        total = serving - start
        print(f"decisions: {[(d.trigger, d.outcome) for d in decisions]}")
        print(f"first alert to {switched_to} serving: {total:.1f} s (2 shared CPU cores)")
        rows = [[s.step, f"{s.wall_s:.1f}", f"{s.wall_s / total:.0%}"] for s in ran]
        steps_s = sum(s.wall_s for s in ran)
        rows.append(
            [
                "alert check (monitor)",
                f"{turned - start - steps_s:.1f}",
                f"{(turned - start - steps_s) / total:.0%}",
            ]
        )
        rows.append(["server switch", f"{serving - turned:.2f}", f"{(serving - turned) / total:.0%}"])
        table(["part", "seconds", "share"], rows)
        print(f"held-out shifted accuracy: {before:.3f} before, {after:.3f} after")
        done = next(d for d in decisions if d.outcome == "finished")
        print(
            f"the turn's recorded cost: {done.figures['cpu_s']:.1f} CPU s (child processes included), "
            f"{done.figures['energy_kwh'] * 1000:.3f} Wh ({done.figures['energy_source']})"
        )

        watch(ws, polls=1)  # the first look of a controller runs the monitor once
        cpu = time.process_time()
        wall = time.perf_counter()
        watch(ws, polls=args.looks, wait=lambda s: False)
        per_look = (time.process_time() - cpu) / args.looks
        per_look_wall = (time.perf_counter() - wall) / args.looks
        poll_s = LoopPolicyConfig().poll_s
        print(
            f"idle: {per_look * 1000:.1f} ms CPU per look ({per_look_wall * 1000:.1f} ms wall) over "
            f"{args.looks} looks; at poll_s={poll_s:g} that is {per_look / poll_s:.4%} of one core"
        )


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
