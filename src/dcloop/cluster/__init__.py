"""Ray: submitting dcloop's stages to a cluster (the ``ray`` extra).

Public API (Ray is imported only when one of these runs):
``cluster_up``/``cluster_down`` (a local head for trying it), ``cluster_status`` (nodes, resources,
running jobs), ``connected`` (join the configured cluster for a block) and ``train_on_cluster``
(Ray Train around the same training function as torchrun's workers), ``tune_on_cluster`` (the
study's workers as Ray tasks), ``loop_on_cluster`` (each stage of a loop turn as a Ray task),
``serve_on_cluster`` (the server's app as Ray Serve replicas).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dcloop._lazy import lazy_attribute

if TYPE_CHECKING:
    from dcloop.cluster._connect import connected
    from dcloop.cluster._local import cluster_down, cluster_up
    from dcloop.cluster._loop import loop_on_cluster
    from dcloop.cluster._serve import serve_on_cluster
    from dcloop.cluster._status import cluster_status
    from dcloop.cluster._train import train_on_cluster
    from dcloop.cluster._tune import tune_on_cluster

_EXPORTS = {
    "connected": "dcloop.cluster._connect",
    "cluster_up": "dcloop.cluster._local",
    "cluster_down": "dcloop.cluster._local",
    "loop_on_cluster": "dcloop.cluster._loop",
    "serve_on_cluster": "dcloop.cluster._serve",
    "cluster_status": "dcloop.cluster._status",
    "train_on_cluster": "dcloop.cluster._train",
    "tune_on_cluster": "dcloop.cluster._tune",
}

__all__ = [
    "cluster_down",
    "cluster_status",
    "cluster_up",
    "connected",
    "loop_on_cluster",
    "serve_on_cluster",
    "train_on_cluster",
    "tune_on_cluster",
]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _EXPORTS)
