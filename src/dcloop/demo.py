"""`dcloop demo`: the loop closing on real data under a simulated distribution shift, for images
(Animal-MNIST, ``task="image"``) or texts (Debian's fortunes by category, ``task="text"``).

Read top to bottom: a fresh workspace -> the examples collected so far (6 of every 10 per class)
become the imported source; the rest is the future -> one loop turn: prepare, train the champion,
optimize, register, gate, deploy -> the real server app answers a stream of *shifted* future
examples; a share of them gets true labels through /feedback -> monitoring raises drift alerts -> the
challenger retrained on the feedback passes the gate and is promoted -> the server switches to it ->
accuracy on held-out shifted examples before and after, and the share of the lost accuracy won back.
The two tasks differ only in their entry of `_demo_world.TASKS` and their shifts.
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

from dcloop._demo_traffic import ShiftedTraffic, TrafficClient, check_shift, shift_inputs
from dcloop._demo_world import TASKS, Task, split_world
from dcloop.errors import DcloopError
from dcloop.store import runs as store_runs
from dcloop.workspace import CONFIG_NAME, Workspace, init_workspace, open_workspace

if TYPE_CHECKING:
    from dcloop.loop import LoopTurn, StepResult

log = logging.getLogger(__name__)
T = TypeVar("T")
MARKER = "demo.json"  # in .dcloop/: this folder is a demo workspace, safe to recreate


@dataclass(frozen=True)
class DemoResult:
    """The figures of one demo run. Accuracies are on the held-out examples, never trained on."""

    workspace: Path
    task: str  # the modality: image or text
    shift: str
    seed: int  # of the champion's and challenger's training
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


def demo_config(fast: bool, task: str = "image") -> dict[str, Any]:
    """The demo workspace's dcloop.yaml for ``task`` (everything else: defaults)."""
    return _task(task).config(fast)


def run_demo(
    directory: str | os.PathLike[str],
    fast: bool = False,
    *,
    task: str = "image",
    shift: str | None = None,
    classes: list[str] | None = None,
    source: str | None = None,
    label_fraction: float = 0.8,
    seed: int = 0,
    on_step: Callable[[StepResult], None] | None = None,
) -> DemoResult:
    """Run the demo in ``directory`` (created; a previous demo there is replaced); ``on_step`` sees
    each loop step as it ends.

    ``task`` picks the modality (image or text) and ``shift`` one of its shifts (default: negative,
    banner). ``source`` replaces the task's built-in data (text: a table with ``text`` and ``label``
    columns, or a folder of class sub-folders of .txt files). ``seed`` seeds the champion's and the
    challenger's training (weights, order, augmentation); the history and future stay the same.
    """
    from dcloop.data import import_source
    from dcloop.deploy import get_model_version
    from dcloop.loop import Gated, Monitored, Retrained, Trained, run_loop

    started = time.perf_counter()
    spec = _task(task)
    shift = shift or spec.shift
    check_shift(spec.modality, shift)
    classes = classes or (spec.fast_classes if fast and source is None else None)
    meta = {"fast": fast, "task": task, "shift": shift, "seed": seed}
    config = spec.config(fast)
    config["train"] = {**config["train"], "seed": seed}
    ws = _fresh_workspace(Path(directory), config, meta)
    world = split_world(spec, ws.root, source, classes)
    record = import_source(ws, str(world.history), name=spec.dataset)
    stream = (shift_inputs(spec.modality, shift, world.stream[0]), world.stream[1])
    held_out = (shift_inputs(spec.modality, shift, world.held_out[0]), world.held_out[1])
    ref = f"{spec.model}@champion"
    client = TrafficClient(ws, ref)
    traffic = ShiftedTraffic(client, stream, held_out, label_fraction)
    try:
        turn = run_loop(ws, traffic=traffic, on_step=on_step)
        gated, retrained = _output(turn, Gated), _output(turn, Retrained)
        champion = get_model_version(ws, gated.champion)
        before = traffic.summary["held_out_accuracy"]
        unshifted = _accuracy(champion, world.held_out[0], held_out[1])
        after, promoted, served = before, retrained.retrain_promoted, champion.ref
        if promoted:
            client.switch(ref)
            predicted, _, served = client.predict(held_out[0])
            after = float((predicted == held_out[1]).mean())
        gauges = client.alert_gauges()
    finally:
        client.close()
    lost = unshifted - before
    result = DemoResult(
        workspace=ws.root,
        task=task,
        shift=shift,
        seed=seed,
        model=spec.model,
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


def _task(name: str) -> Task:
    if name not in TASKS:
        from dcloop.errors import unknown_name

        raise unknown_name("demo task", name, TASKS)
    return TASKS[name]


def _accuracy(version: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of a registered version on uint8 images or texts, on the ONNX runtime the server uses."""
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
