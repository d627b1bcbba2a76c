"""Whether every alive node reaches the folders a cluster job writes: a tiny Ray task per node checks.

A workspace (data, run folders, the SQLite store and study) or a ``cluster.storage_path`` that only
the driver's machine has would otherwise fail deep inside a worker, or only after Ray Train's first
checkpoint; checked up front, it is one line naming the setting and the node.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from dcloop.errors import ClusterError
from dcloop.workspace import Workspace

PROBE_TIMEOUT_S = 120.0  # a fresh worker process on a busy node takes tens of seconds to start
WORKSPACE = "the workspace root"


def check_reachable(workspace: Workspace, others: Mapping[str, str | None]) -> None:
    """Refuse the job when a node cannot write the workspace root or one of ``others`` (setting -> path).

    URIs (``s3://``, ``gs://``) are Ray's to reach and are not checked. Needs ``ray.init`` done.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from dcloop.cluster._status import nodes

    folders = {WORKSPACE: str(workspace.root)} | {
        setting: path for setting, path in others.items() if path and "://" not in path
    }
    task = ray.remote(num_cpus=0, max_retries=0)(folder_problem)
    pending = [
        (
            node,
            task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False)).remote(
                folders
            ),
        )
        for node in nodes()
    ]
    for node, ref in pending:
        where = f"node {node.address} ({node.id[:8]})"
        try:
            problem = ray.get(ref, timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"{where} did not answer within {PROBE_TIMEOUT_S:g} s whether it reaches "
                f"{', '.join(folders.values())}; check the node with `dcloop cluster status`."
            ) from None
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClusterError(f"{where} could not check the shared folders: {first}") from None
        if problem:
            raise ClusterError(f"{problem} on {where}: every node must reach it (a folder all nodes mount).")


def folder_problem(folders: Mapping[str, str]) -> str | None:
    """What is wrong with the first folder (setting -> path) this machine cannot write, or None."""
    for setting, path in folders.items():
        folder = Path(path)
        if not folder.is_dir():
            return (
                f"{setting} {path} is not a folder" if folder.exists() else f"{setting} {path} does not exist"
            )
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".dcloop-reach-"):
                pass
        except OSError as exc:
            return f"{setting} {path} is not writable ({exc.strerror or exc})"
    return None
