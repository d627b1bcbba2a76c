"""``serve``: run the server with uvicorn (one process, or several workers each with its own session)."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from dcloop.errors import ConfigError
from dcloop.workspace import Workspace, open_workspace

log = logging.getLogger(__name__)
_ARGS_ENV = "DCLOOP_SERVE_ARGS"


def serve(
    ws: Workspace,
    model_ref: str | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | Literal["auto"] | None = None,
    token_env: str | None = None,
    follow_champion_s: float | None = None,
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Serve ``model_ref`` (default: ``serve.model``, else the only model's champion) until stopped.

    The token is read from the environment variable ``token_env`` (never from config or flags);
    without it the write and admin endpoints refuse every request. ``on_start`` gets the URL once
    the model reference has been checked, just before the server starts.
    """
    import uvicorn

    cfg = ws.config.serve
    args = serve_args(ws, model_ref, token_env=token_env, follow_champion_s=follow_champion_s)
    host, port = host or cfg.host, cfg.port if port is None else port
    workers = resolve_workers(workers or cfg.workers)
    check_port(host, port)  # one line with a hint, not uvicorn's bind error after start-up
    if on_start is not None:
        on_start(f"http://{host}:{port}")
    from dcloop.deploy._protocol import CappedHttpToolsProtocol  # 431 for oversized request headers

    if workers == 1:
        uvicorn.run(
            app_from_args(args),
            host=host,
            port=port,
            http=CappedHttpToolsProtocol,
            log_level="warning",
            access_log=False,
        )
        return
    from dcloop.deploy._metrics import multiprocess_dir

    with multiprocess_dir() as shared:  # the workers add up their /metrics through files in it
        args["shared_dir"] = str(shared)  # and take turns at the log, and follow each other's switches
        os.environ[_ARGS_ENV] = json.dumps(args)
        uvicorn.run(
            "dcloop.deploy._launch:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http=CappedHttpToolsProtocol,
            log_level="warning",
            access_log=False,
        )


def resolve_workers(workers: int | Literal["auto"]) -> int:
    """``serve.workers`` as a number: ``auto`` is one per usable CPU core, at most AUTO_SERVE_WORKERS."""
    from dcloop.config import AUTO_SERVE_WORKERS

    return min(usable_cpus(), AUTO_SERVE_WORKERS) if workers == "auto" else workers


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPU cores this process may run on: its affinity mask, lowered by a cgroup CPU quota (a container
    started with ``--cpus 2`` on a 64-core host has 2; cgroup v2 ``cpu.max``, else v1's CFS files), at
    least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cpu_quota(cgroup)
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def _cpu_quota(cgroup: Path) -> int | None:
    """The cgroup's CPU quota in whole cores, rounded up (1.5 cores can keep 2 busy); None: no quota,
    or files this reading does not know."""
    try:
        if (cgroup / "cpu.max").exists():  # v2: "<quota> <period>" or "max <period>"
            quota, period = (cgroup / "cpu.max").read_text(encoding="utf-8").split()[:2]
        else:  # v1: quota -1 is none
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text(encoding="utf-8").strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text(encoding="utf-8").strip()
        if quota in ("max", "-1") or int(quota) <= 0 or int(period) <= 0:
            return None
        return -(-int(quota) // int(period))
    except (OSError, ValueError):
        return None


def serve_args(
    ws: Workspace,
    model_ref: str | None = None,
    *,
    token_env: str | None = None,
    follow_champion_s: float | None = None,
) -> dict[str, Any]:
    """The checked arguments each server process (a uvicorn worker, a Ray Serve replica) builds its app
    from with ``app_from_args``; they travel between processes, so they hold the token's variable name,
    never the token."""
    from dcloop.deploy._registry import get_model_version, resolve_model_name
    from dcloop.deploy._schema import check_model_ref

    cfg = ws.config.serve
    token_env = token_env or cfg.token_env
    model_ref = model_ref or cfg.model or f"{resolve_model_name(ws)}@champion"
    try:
        check_model_ref(model_ref)
    except ValueError as exc:
        raise ConfigError(f"The model to serve {exc}. Got {model_ref!r}.") from None
    get_model_version(ws, model_ref)  # a bad reference is a one-line error here, not a failed startup
    if not os.environ.get(token_env):
        log.warning("$%s is not set: /feedback and /admin refuse every request", token_env)
    return {
        "root": str(ws.root),
        "model_ref": model_ref,
        "token_env": token_env,
        "follow_champion_s": cfg.follow_champion_s if follow_champion_s is None else follow_champion_s,
    }


def check_port(host: str, port: int) -> None:
    """A ConfigError naming the port and what to do when ``host:port`` cannot be listened on."""
    if port == 0:  # the system picks a free one
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"`serve.host` {host!r} does not resolve ({exc.strerror}). Use 127.0.0.1 or 0.0.0.0."
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"Port {port} on {host} is already in use (another dcloop serve?). Stop that process "
                    f"or pick a free port: dcloop serve --port {port + 1 if port < 65535 else 8000}"
                ) from None
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                + (
                    "Ports below 1024 need privileges; use --port 8000."
                    if port < 1024
                    else "Pick another --port."
                )
            ) from None


def app_from_args(args: dict[str, Any]) -> Any:
    from dcloop.deploy._server import create_app

    ws = open_workspace(Path(args["root"]))
    cfg, fb = ws.config.serve, ws.config.feedback
    return create_app(
        ws,
        args["model_ref"],
        max_batch_size=cfg.max_batch_size,
        max_queue_delay_ms=cfg.max_queue_delay_ms,
        max_queue=cfg.max_queue,
        token=os.environ.get(args["token_env"]) or None,
        max_body_bytes=int(cfg.max_body_mb * 1024 * 1024),
        max_image_pixels=cfg.max_image_pixels,
        threads=cfg.threads,
        store_inputs=fb.store_inputs,
        log_predictions=fb.log_predictions,
        follow_champion_s=args["follow_champion_s"],
        retention_days=fb.retention_days,
        max_input_mb=fb.max_input_mb,
        prediction_days=fb.prediction_days,
        max_predictions_mb=fb.max_predictions_mb,
        retention_every_s=fb.retention_every_s,
        shared_dir=Path(args["shared_dir"]) if args.get("shared_dir") else None,
    )


def app_from_env() -> Any:
    """uvicorn factory for worker processes: arguments travel in $DCLOOP_SERVE_ARGS (no secrets)."""
    _end_with_parent()
    return app_from_args(json.loads(os.environ[_ARGS_ENV]))


def _end_with_parent() -> None:
    """Ask the kernel to kill this worker when the server's supervising process dies (Linux).

    uvicorn's workers hold the listening socket; if the supervisor is killed (``kill -9``, the OOM
    killer) they would serve on, orphaned, and a restart would find the port taken. They die with it
    instead, at once, as one process would: every answered prediction is committed before its answer,
    so nothing acknowledged is lost, and the port is free for the restart.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1  # <sys/prctl.h>
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("this worker will not stop with its server: prctl failed (errno %d)", ctypes.get_errno())
    elif os.getppid() != parent:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)
