"""`dcloop demo`: the loop closing on real data (Animal-MNIST) under a simulated distribution shift.

Read top to bottom: a fresh workspace -> the images collected so far (6 of every 10 Animal-MNIST
images) become the imported source; the rest is the future -> one loop turn: prepare, train the
champion, optimize, register, gate, deploy -> the real server app answers a stream of *shifted*
future images; a share of them gets true labels through /feedback -> monitoring raises drift alerts
-> the challenger retrained on the feedback passes the gate and is promoted -> the server switches to
it -> accuracy on held-out shifted images before and after, and the share of the lost accuracy won back.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import yaml

from dcloop._demo_traffic import ShiftedTraffic, TrafficClient, shift_images
from dcloop.errors import DcloopError
from dcloop.store import runs as store_runs
from dcloop.workspace import CONFIG_NAME, Workspace, init_workspace, open_workspace

if TYPE_CHECKING:
    from dcloop.loop import LoopTurn, StepResult

log = logging.getLogger(__name__)
T = TypeVar("T")
MARKER = "demo.json"  # in .dcloop/: this folder is a demo workspace, safe to recreate
HISTORY_SHARE = 0.6  # share of each class the champion's data set is built from
STREAM_SHARE = 0.6  # share of the future images that is the labelled traffic stream (rest: held out)


@dataclass(frozen=True)
class DemoResult:
    """The figures of one demo run. Accuracies are on the held-out images, never trained on."""

    workspace: Path
    shift: str
    model: str
    champion: str
    challenger: str | None
    promoted: bool
    served_after: str  # the version the server answered the held-out images with, after the loop
    gate_reasons: list[str]
    accuracy_unshifted: float
    accuracy_shifted_before: float
    accuracy_shifted_after: float
    recovered: float | None  # (after - before) / (unshifted - before)
    stream: int
    labelled: int
    held_out: int
    alerts: list[str]
    alert_gauges: dict[str, float]
    dataset: dict[str, Any]
    run_accuracy: float | None
    wall_s: float
    report: Path
    reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def demo_config(fast: bool) -> dict[str, Any]:
    """The demo workspace's dcloop.yaml (everything else: defaults)."""
    # fast: the same small CNN on three classes for fewer epochs (tests); full: all ten classes
    train = {"model": "seed-cnn", "width": 32, "epochs": 4 if fast else 8, "batch_size": 64 if fast else 128}
    # the recipe is spelled out so the demo's figures do not move when a default does
    recipe = {"optimizer": "adamw", "lr": 3e-3, "schedule": "onecycle", "label_smoothing": 0.05, "seed": 0}
    augment = {
        "enabled": True,
        "rotation": 15.0,
        "width_shift": 0.1,
        "height_shift": 0.1,
        "shear": 0.1,
        "zoom": 0.1,
    }
    return {
        "name": "dcloop-demo",
        "data": {"val_fraction": 0.1, "test_fraction": 0.2, "seed": 0},
        "train": {**train, **recipe, "augment": {**augment, "hflip": True}, "threads": 1},
        "tracking": {"mlflow": not fast},
        "optimize": {"latency_runs": 20, "throughput_batches": 2},
        # 2 points of recall per class are a handful of test images here: allow 5 and refuse a larger
        # drop only when it is significant (about 120 test images a class), and allow a 1-point test
        # dip when the held-out labelled feedback shows the gain.
        "gate": {"min_improvement": -1.0, "max_class_regression": 5.0, "class_regression_p": 0.05},
        "loop": {
            "model": "animals",
            "optimize_methods": ["onnx"],
            "retrain_min_labels": 50,
            "warm_start": True,
        },
    }


def run_demo(
    directory: str | os.PathLike[str],
    fast: bool = False,
    *,
    shift: str = "negative",
    classes: list[str] | None = None,
    label_fraction: float = 0.8,
    on_step: Callable[[StepResult], None] | None = None,
) -> DemoResult:
    """Run the demo in ``directory`` (created; a previous demo there is replaced); ``on_step`` sees
    each loop step as it ends."""
    from dcloop.data import import_source
    from dcloop.deploy import get_model_version
    from dcloop.loop import Gated, Monitored, Retrained, Trained, run_loop

    started = time.perf_counter()
    classes = classes or (["bird", "elephant", "giraffe"] if fast else None)
    ws = _fresh_workspace(Path(directory), demo_config(fast), {"fast": fast, "shift": shift})
    history, future = _split_world(ws, classes)
    record = import_source(ws, str(history), name="animal-mnist-history")
    stream, held_out = _split_future(future, shift)
    client = TrafficClient(ws, "animals@champion")
    traffic = ShiftedTraffic(client, stream, held_out, label_fraction)
    try:
        turn = run_loop(ws, traffic=traffic, on_step=on_step)
        gated, retrained = _output(turn, Gated), _output(turn, Retrained)
        champion = get_model_version(ws, gated.champion)
        before = traffic.summary["held_out_accuracy"]
        unshifted = _accuracy(champion, future["x_held_out"], held_out[1])
        after, promoted, served = before, retrained.retrain_promoted, champion.ref
        if promoted:
            client.switch("animals@champion")
            predicted, _, served = client.predict(held_out[0])
            after = float((predicted == held_out[1]).mean())
        gauges = client.alert_gauges()
    finally:
        client.close()
    lost = unshifted - before
    result = DemoResult(
        workspace=ws.root,
        shift=shift,
        model="animals",
        champion=champion.ref,
        challenger=retrained.challenger,
        promoted=promoted,
        served_after=served,
        gate_reasons=list(retrained.retrain_reasons),
        accuracy_unshifted=unshifted,
        accuracy_shifted_before=before,
        accuracy_shifted_after=after,
        recovered=(after - before) / lost if lost > 0 else None,
        stream=int(traffic.summary["stream"]),
        labelled=int(traffic.summary["labelled"]),
        held_out=len(held_out[1]),
        alerts=list(_output(turn, Monitored).alerts),
        alert_gauges=gauges,
        dataset={
            "version": record.id,
            "name": record.name,
            "counts": record.counts,
            "classes": record.classes,
        },
        run_accuracy=_output(turn, Trained).run_accuracy,
        wall_s=time.perf_counter() - started,
        report=ws.reports_dir / "demo.html",
        reports=_reports(ws, turn),
    )
    from dcloop._demo_report import write_demo_report

    write_demo_report(result, turn, ws.config.monitor)
    return result


def _fresh_workspace(directory: Path, config: dict[str, Any], meta: dict[str, Any]) -> Workspace:
    """A new workspace in ``directory``; an earlier demo there is removed, anything else is refused."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / ".dcloop" / MARKER).is_file():
            raise DcloopError(
                f"{directory} is not empty and holds no earlier demo; give a new or empty folder."
            )
        _forget_store(directory)
        for child in directory.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    ws = init_workspace(directory)
    text = "# The dcloop demo workspace (`dcloop demo`); fields not set here take their defaults.\n"
    (ws.root / CONFIG_NAME).write_text(text + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (ws.state / MARKER).write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return open_workspace(ws.root)


def _forget_store(directory: Path) -> None:
    """Close this process's connections to the old demo's database before its file is deleted."""
    from dcloop.store import close_store

    close_store(f"sqlite:///{directory.resolve() / '.dcloop' / 'dcloop.db'}")


def _split_world(ws: Workspace, classes: list[str] | None) -> tuple[Path, dict[str, np.ndarray]]:
    """Animal-MNIST split per class into the history (written as an .npz source) and the future."""
    from dcloop.data._intake import SOURCES

    world = SOURCES.get("animal-mnist")(None, classes, 28, "grayscale")
    rng = np.random.default_rng(0)
    past, later = [], []
    for index in range(len(world.classes)):
        members = rng.permutation(np.flatnonzero(world.y == index))
        cut = int(len(members) * HISTORY_SHARE)
        past.append(members[:cut])
        later.append(members[cut:])
    keep, rest = np.sort(np.concatenate(past)), rng.permutation(np.concatenate(later))
    path = ws.root / "animal-mnist-history.npz"
    np.savez_compressed(path, x=world.x[keep], y=world.y[keep], classes=np.array(world.classes))
    cut = int(len(rest) * STREAM_SHARE)
    return path, {
        "x_stream": world.x[rest[:cut]],
        "y_stream": world.y[rest[:cut]],
        "x_held_out": world.x[rest[cut:]],
        "y_held_out": world.y[rest[cut:]],
    }


def _split_future(
    future: dict[str, np.ndarray], shift: str
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    stream = (shift_images(shift, future["x_stream"]), future["y_stream"])
    held_out = (shift_images(shift, future["x_held_out"]), future["y_held_out"])
    return stream, held_out


def _accuracy(version: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of a registered version on uint8 images, on the same ONNX runtime the server uses."""
    from dcloop.deploy import load_model

    return float((load_model(version).predict_classes(x) == y).mean())


def _output(turn: LoopTurn, kind: type[T]) -> T:
    output = turn.output(kind)
    assert output is not None, f"a finished turn has every step's output; {kind.__name__} is missing"
    return output


def _reports(ws: Workspace, turn: LoopTurn) -> dict[str, str]:
    from dcloop.loop import Monitored, Optimized, Retrained, Trained

    reports = {"demo": str(ws.reports_dir / "demo.html"), "loop turn": str(turn.report)}
    monitored, retrained = _output(turn, Monitored), _output(turn, Retrained)
    if monitored.monitor_report:
        reports["monitor"] = monitored.monitor_report
    for run_id, label in (
        (_output(turn, Trained).run, "champion run"),
        (retrained.retrain_run, "challenger run"),
    ):
        if run_id:
            reports[label] = str(Path(store_runs.get_run(ws.store, run_id).path) / "report.html")
    reports["optimization"] = _output(turn, Optimized).optimization_report
    return reports
