"""`dcloop cluster status` and the up-front resource check: what the cluster has, node by node.

A request no node can meet is refused before anything is submitted, with what the nodes do have:
Ray would otherwise keep the job pending forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dcloop.cluster._usage import custom_resources
from dcloop.errors import ClusterError
from dcloop.workspace import Workspace


@dataclass(frozen=True)
class Node:
    """One alive node: its id, address, totals and free amounts, and custom resources (its labels)."""

    id: str
    address: str
    head: bool
    cpus: float
    gpus: float
    memory_gb: float
    free_cpus: float
    free_gpus: float
    custom: dict[str, float] = field(default_factory=dict)


def nodes() -> list[Node]:
    """Alive nodes of the joined cluster (ray.init done)."""
    import ray

    free = _free_per_node()
    found = []
    for entry in ray.nodes():
        if not entry.get("Alive"):
            continue
        res = entry.get("Resources", {})
        avail = free.get(entry["NodeID"], {})
        custom = custom_resources(res)
        found.append(
            Node(
                id=entry["NodeID"],
                address=entry.get("NodeManagerAddress", "?"),
                head="node:__internal_head__" in res,
                cpus=res.get("CPU", 0.0),
                gpus=res.get("GPU", 0.0),
                memory_gb=round(res.get("memory", 0.0) / 1e9, 2),
                free_cpus=avail.get("CPU", res.get("CPU", 0.0)),
                free_gpus=avail.get("GPU", res.get("GPU", 0.0)),
                custom=custom,
            )
        )
    return sorted(found, key=lambda n: (not n.head, n.id))


def _free_per_node() -> dict[str, dict[str, float]]:
    """Free resources per node id; empty when this Ray version does not expose them."""
    try:
        from ray._private.state import available_resources_per_node
    except ImportError:
        return {}
    return {k: dict(v) for k, v in available_resources_per_node().items()}


def cluster_status(workspace: Workspace) -> dict[str, Any]:
    """Nodes, totals and the dcloop jobs this workspace's store says are running on the cluster."""
    from dcloop.store.runs import unfinished_runs

    found = nodes()
    jobs = [
        {
            "run": r.id[:12],
            "name": r.name,
            "kind": r.kind,
            "status": r.status,
            "nodes": r.lineage["cluster"].get("nodes"),
        }
        for r in unfinished_runs(workspace.store)
        if r.status == "running" and isinstance(r.lineage.get("cluster"), dict)
    ]
    totals = {"nodes": len(found), "cpus": sum(n.cpus for n in found), "gpus": sum(n.gpus for n in found)}
    totals |= {"free_cpus": sum(n.free_cpus for n in found), "free_gpus": sum(n.free_gpus for n in found)}
    return {"totals": totals, "nodes": [asdict(n) for n in found], "jobs": jobs}


def check_fits(
    what: str,
    setting: str,
    cpus: float,
    gpus: float,
    count: int = 1,
    *,
    memory_gb: float = 0.0,
    custom: Mapping[str, float] | None = None,
    found: list[Node] | None = None,
) -> None:
    """Refuse a request (``count`` pieces of ``cpus``/``gpus``, plus ``memory_gb`` and ``custom``
    resources, each) that the cluster's nodes cannot hold; ``found`` defaults to the joined cluster's."""
    found = nodes() if found is None else found
    need = {"CPU": cpus, "GPU": gpus, "memory": memory_gb, **(custom or {})}
    if sum(_slots(_totals(n), need) for n in found) >= count:
        return
    amounts = f"{count} x {cpus:g} CPU" + (f" + {gpus:g} GPU" if gpus else "")
    amounts += (f" + {memory_gb:g} GB memory" if memory_gb else "") + "".join(
        f" + {v:g} {k}" for k, v in (custom or {}).items()
    )
    have = ", ".join(_have(n, bool(memory_gb or custom)) for n in found) or "no alive nodes"
    raise ClusterError(
        f"The cluster cannot hold {what}: it needs {amounts} ({setting}), and the nodes have: {have}. "
        "Lower the request or add nodes."
    )


def _totals(node: Node) -> dict[str, float]:
    return {"CPU": node.cpus, "GPU": node.gpus, "memory": node.memory_gb, **node.custom}


def _have(node: Node, detailed: bool) -> str:
    """One node's totals as the refusal shows them (memory and labels only when the request names them)."""
    text = f"{node.address} ({node.id[:8]}) {node.cpus:g} CPU {node.gpus:g} GPU"
    if detailed:
        text += f" {node.memory_gb:g} GB" + "".join(f" {k}={v:g}" for k, v in sorted(node.custom.items()))
    return text


def _slots(totals: Mapping[str, float], need: Mapping[str, float]) -> int:
    """How many pieces of ``need`` fit on one node's totals (a resource the node lacks fits none)."""
    fits = [int(totals.get(k, 0.0) // v) for k, v in need.items() if v > 0]
    return min(fits, default=10**6)
