"""`dcloop serve --cluster`: the single-process server's FastAPI app, as Ray Serve replicas.

Each replica builds its app with the launcher's ``app_from_args`` (``create_app``, as a uvicorn worker
does), so the routes, the durable prediction log (an answer leaves only after its row is committed)
and champion following are the single-process server's own. Every replica writes to the workspace
store, so the workspace must be on a folder every node reaches (SQLite) or ``store.url`` PostgreSQL.
One Ray Serve HTTP proxy runs, on the head node, bound to ``serve.host`` (loopback by default).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from dcloop._signals import signal_handlers
from dcloop.cluster._connect import connected
from dcloop.cluster._status import check_fits
from dcloop.config import ClusterConfig
from dcloop.errors import ClusterError, ConfigError, NotFoundError
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
APP_NAME = "dcloop"
DEPLOYMENT = "server"


def serve_on_cluster(
    workspace: Workspace,
    model_ref: str | None = None,
    *,
    replicas: int | None = None,
    host: str | None = None,
    port: int | None = None,
    token_env: str | None = None,
    follow_champion_s: float | None = None,
    address: str | None = None,
    on_start: Callable[[str, str], None] | None = None,
) -> None:
    """Serve ``model_ref`` on the cluster until SIGINT or SIGTERM, then shut Ray Serve down.

    ``replicas`` fixes the replica count; without it autoscaling keeps between
    ``cluster.serve_min_replicas`` and ``cluster.serve_max_replicas``. ``on_start`` gets the URL and
    how many replicas serve, once they all answer.
    """
    stop = threading.Event()
    with (
        deployed(
            workspace,
            model_ref,
            replicas=replicas,
            host=host,
            port=port,
            token_env=token_env,
            follow_champion_s=follow_champion_s,
            address=address,
        ) as url,
        _stop_on_signals(stop),
    ):  # after ray.init, which sets handlers of its own
        if on_start is not None:
            on_start(url, _replica_count(workspace.config.cluster, replicas))
        stop.wait()


@contextmanager
def deployed(
    workspace: Workspace,
    model_ref: str | None = None,
    *,
    replicas: int | None = None,
    host: str | None = None,
    port: int | None = None,
    token_env: str | None = None,
    follow_champion_s: float | None = None,
    address: str | None = None,
) -> Iterator[str]:
    """The app deployed as Ray Serve replicas for the block (its base URL), shut down afterwards."""
    from dcloop.deploy._launch import check_port, serve_args

    args = serve_args(workspace, model_ref, token_env=token_env, follow_champion_s=follow_champion_s)
    cfg = workspace.config
    host, port = host or cfg.serve.host, cfg.serve.port if port is None else port
    if port == 0:
        raise ConfigError(
            "`serve.port` must be a fixed port with --cluster (Ray Serve's proxy picks none). Got 0."
        )
    check_port(host, port)  # the proxy binds on the head: true when this runs there, as `cluster up` does
    settings = cfg.cluster
    with connected(workspace, address):
        count = replicas or settings.serve_min_replicas
        check_fits(
            f"{count} serving replicas",
            "cluster.serve_cpus_per_replica",
            settings.serve_cpus_per_replica,
            0.0,
            count,
        )
        from ray import serve

        _refuse_running(serve)
        serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")
        try:
            _run(serve, _deployment(args, settings, replicas))
            yield f"http://{host}:{port}"
        finally:
            serve.shutdown()


def _refuse_running(serve: Any) -> None:
    """Ray Serve runs one HTTP proxy per cluster and shutting it down stops every app: refuse to take
    over one that already serves something."""
    running = sorted(serve.status().applications)
    if running:
        raise ClusterError(
            f"Ray Serve on this cluster already runs {', '.join(running)} (another `dcloop serve --cluster`?). "
            "Stop it first (Ctrl-C there, or `serve shutdown`), or use another cluster."
        )


def _run(serve: Any, app: Any) -> None:
    """Deploy and wait until every replica has built its app; replicas that cannot are one error line."""
    try:
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    except RuntimeError:
        raise ClusterError(f"The serving replicas did not start: {_replica_error(serve)}") from None


def _replica_error(serve: Any) -> str:
    """The last line of the replicas' own error (the application's status says only that one failed)."""
    app = serve.status().applications.get(APP_NAME)
    message = app.deployments[DEPLOYMENT].message if app and DEPLOYMENT in app.deployments else ""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else "see the Ray Serve replica logs on the cluster"


def _deployment(args: dict[str, Any], settings: ClusterConfig, replicas: int | None) -> Any:
    """The Ray Serve application: ``app_from_args(args)`` built on each replica, behind its routes."""
    from ray import serve

    token = os.environ.get(args["token_env"])
    options: dict[str, Any] = {"num_cpus": settings.serve_cpus_per_replica}
    if token:  # a replica's environment is its raylet's; the token travels to it with the deployment
        options["runtime_env"] = {"env_vars": {args["token_env"]: token}}
    scaling: dict[str, Any] = (
        {"num_replicas": replicas}
        if replicas
        else {
            "autoscaling_config": {
                "min_replicas": settings.serve_min_replicas,
                "max_replicas": settings.serve_max_replicas,
                "target_ongoing_requests": max(1, settings.serve_max_ongoing_requests // 2),
            }
        }
    )
    deployment = serve.deployment(
        name=DEPLOYMENT,
        max_ongoing_requests=settings.serve_max_ongoing_requests,
        ray_actor_options=options,
        **scaling,
    )
    return deployment(serve.ingress()(DcloopServer)).bind(args)


class DcloopServer:
    """One replica: Ray Serve asks it for its ASGI app once it is placed, so the app (and its ONNX
    session and store connection) is built on the replica's node, never pickled from the driver."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args

    def __serve_build_asgi_app__(self) -> Any:
        from dcloop.deploy._launch import app_from_args

        _check_model_file(self.args)  # else the app's start-up fails with its reason in the replica's log
        return app_from_args(self.args)


def _check_model_file(args: dict[str, Any]) -> None:
    """The model's file must be on this node: a workspace not shared with it is the usual reason."""
    from dcloop.deploy._registry import get_model_version
    from dcloop.workspace import open_workspace

    path = Path(get_model_version(open_workspace(Path(args["root"])), args["model_ref"]).path)
    if not path.is_file():
        raise NotFoundError(
            f"{args['model_ref']}'s file {path} is not on node {socket.gethostname()}: the workspace "
            "must be on a folder every node reaches."
        )


def _replica_count(settings: ClusterConfig, replicas: int | None) -> str:
    """How many replicas serve, as the start-up notice says it."""
    if replicas:
        return str(replicas)
    return f"{settings.serve_min_replicas} to {settings.serve_max_replicas} autoscaled"


def _stop_on_signals(stop: threading.Event) -> AbstractContextManager[None]:
    """SIGINT and SIGTERM set ``stop`` for the block, so the deployment is shut down either way."""

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting the replicas down", signum)
        stop.set()

    return signal_handlers(("SIGINT", "SIGTERM"), handle)
