"""Where a piece of cluster work ran, for its record: shared by training workers and loop stages.

Code running inside a Ray worker calls :func:`open_shared_workspace` (the workspace must be on a
folder every node reaches) and :func:`this_node` (its node id, address and custom resources), and
records them beside what it used as measured by dcloop's JobMeter on that node (``meter_for``), so
CPU time, energy (from counters where they exist, else estimated and labelled so) and money are
counted the same way as for local jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcloop.errors import ClusterError

if TYPE_CHECKING:
    from dcloop.config import Config
    from dcloop.workspace import Workspace

BUILTIN = ("CPU", "GPU", "memory", "object_store_memory")


def custom_resources(resources: Mapping[str, float]) -> dict[str, float]:
    """A node's own resources (its labels), without Ray's built-in and per-node ones."""
    return {
        k: v
        for k, v in resources.items()
        if k not in BUILTIN and not k.startswith(("node:", "accelerator_type"))
    }


def this_node() -> dict[str, Any]:
    """The node this Ray worker runs on: id, address and custom resources (the labels a request can pin)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    entry: dict[str, Any] = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
    labels = sorted(custom_resources(entry.get("Resources", {})))
    return {"node_id": node_id, "address": entry.get("NodeManagerAddress"), "labels": labels}


def open_shared_workspace(root: Path, config: Config | None = None) -> Workspace:
    """The driver's workspace, opened on this node; one error line when this node cannot see it."""
    from dcloop.workspace import open_workspace

    if not (root / "dcloop.yaml").is_file():
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        raise ClusterError(
            f"Workspace {root} is not reachable from node {node_id[:8]}: put it on a shared folder."
        )
    return open_workspace(root, config)
