"""What running a loop turn's stages as Ray tasks costs, stage by stage.

Usage: python benchmarks/cluster_loop.py [--model seed-cnn] [--epochs 1] [--cpus 2]

Runs one loop turn on the real cat-vs-dog Animal-MNIST set twice, in two fresh workspaces with the
same settings: locally (`dcloop loop`) and with every stage a Ray task on a one-node local head
(`dcloop loop --cluster`, train asking for --cpus CPUs, the other stages 1). Prints, per stage, the
local seconds, the cluster seconds as the driver saw them (submit to result: task start included),
the seconds and CPU seconds the stage took on its node, and the ratio of the two turns' totals.
Absolute times on a shared machine are noisy; compare the ratios within one run. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def workspace(root: Path, model: str, epochs: int, cpus: int) -> Any:
    """A workspace with cat vs dog imported and a short turn's settings (ONNX export only)."""
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.workspace import init_workspace, open_workspace

    init_workspace(root)
    text = (
        f"tracking:\n  mlflow: false\ntrain:\n  model: {model}\n  epochs: {epochs}\n  threads: {cpus}\n"
        f"loop:\n  optimize_methods: [onnx]\ncluster:\n  cpus_per_worker: {cpus}\n"
    )
    (root / "dcloop.yaml").write_text(text, encoding="utf-8")
    ws = open_workspace(root, config.load(root / "dcloop.yaml"))
    import_source(ws, "animal-mnist", classes=["cat", "dog"])
    return ws


def main() -> None:
    from _table import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="seed-cnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()

    from dcloop.cluster import cluster_down, cluster_up, loop_on_cluster
    from dcloop.loop import run_loop

    folder = Path(tempfile.mkdtemp(prefix="dcloop-bench-loop-"))
    local = run_loop(workspace(folder / "local", args.model, args.epochs, args.cpus))
    ws = workspace(folder / "cluster", args.model, args.epochs, args.cpus)
    cluster_up(ws, num_cpus=args.cpus)  # Ray's port, or the next free pair
    try:
        remote = loop_on_cluster(ws)
    finally:
        cluster_down(ws)
    rows = []
    for here, there in zip(local.steps, remote.steps, strict=True):
        placed = there.placement or {}
        cost = placed.get("cost", {})
        rows.append(
            [
                here.name,
                f"{here.wall_s:.1f}",
                f"{there.wall_s:.1f}",
                f"{cost.get('wall_s', float('nan')):.1f}",
                f"{cost.get('cpu_s', float('nan')):.1f}",
                f"{cost.get('energy_j', float('nan')):.0f} ({cost.get('energy_source', '?')})",
            ]
        )
    total_local = sum(s.wall_s for s in local.steps)
    total_remote = sum(s.wall_s for s in remote.steps)
    rows.append(["turn", f"{total_local:.1f}", f"{total_remote:.1f}", "", "", ""])
    headers = ["stage", "local s", "cluster s (driver)", "on node s", "node cpu s", "node energy J"]
    print_table(headers, rows)
    print(f"cluster / local turn: {total_remote / total_local:.2f}x; accuracy "
          f"{local.outputs['run_accuracy']:.4f} local, {remote.outputs['run_accuracy']:.4f} cluster")  # fmt: skip


if __name__ == "__main__":
    main()
