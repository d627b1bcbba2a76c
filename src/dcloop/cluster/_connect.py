"""Finding and joining the Ray cluster a `--cluster` command submits to.

The address comes from, in order: the command's own ``--address``, ``RAY_ADDRESS``, ``cluster.address``
in dcloop.yaml, else the local head `dcloop cluster up` started for this workspace. The head's port is
tried with a plain TCP connect first, so an unreachable address is one error line within
``cluster.connect_timeout_s`` instead of Ray's own long retry loop.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcloop.errors import ClusterError
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
HEAD_FILE = "head.json"
RAY_CLIENT_PORT = 10001
GCS_PORT = 6379
INSTALL_RAY = (
    'pip install "dcloop[ray]" (or pip install -c requirements/constraints.txt -r requirements/ray.txt)'
)
# Ray's own check (ray._private.utils.check_version_info) fails ray.init with this multi-line text
_MISMATCH = re.compile(
    r"cluster was started with:\s*Ray: (\S+)\s*Python: (\S+)\s*This process .*? was started with:"
    r"\s*Ray: (\S+)\s*Python: (\S+)",
    re.DOTALL,
)


@dataclass(frozen=True)
class Target:
    """A resolved cluster address and the setting it came from (named in errors)."""

    address: str
    setting: str
    token_path: str | None = None  # the local head's auth token, for clients of that head


def state_dir(workspace: Workspace) -> Path:
    """Where `dcloop cluster up` keeps its head record and auth token."""
    return workspace.state / "cluster"


def local_head(workspace: Workspace) -> dict[str, Any] | None:
    """The record `dcloop cluster up` wrote, or None when no local head was started."""
    path = state_dir(workspace) / HEAD_FILE
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ClusterError(
            f"{path} cannot be read ({exc}); run `dcloop cluster down` and up again."
        ) from None


def resolve(workspace: Workspace, address: str | None = None) -> Target:
    """Which cluster to use, and which setting said so."""
    head = local_head(workspace)
    token = str(head["token_path"]) if head and head.get("token_path") else None
    if address:
        return Target(address, "--address", token)
    if os.environ.get("RAY_ADDRESS"):
        return Target(os.environ["RAY_ADDRESS"], "RAY_ADDRESS", token)
    if workspace.config.cluster.address:
        return Target(workspace.config.cluster.address, "`cluster.address` in dcloop.yaml", token)
    if head is not None:
        return Target(str(head["address"]), f"the local head in {state_dir(workspace) / HEAD_FILE}", token)
    raise ClusterError(
        "No Ray cluster configured: set `cluster.address` in dcloop.yaml or RAY_ADDRESS "
        "(ray://HEAD:10001, HOST:6379 or auto), or start a local one with `dcloop cluster up`."
    )


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of an address to probe; None for ``auto``/``local`` that Ray resolves itself."""
    if address in ("auto", "local"):
        return None
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, RAY_CLIENT_PORT if client else GCS_PORT
    if not port.isdigit():
        raise ClusterError(f"Ray address {address!r} must be HOST:PORT, ray://HOST:PORT or auto.")
    return host.strip("[]"), int(port)


def probe(target: Target, timeout_s: float) -> None:
    """Fail fast, naming the setting, when nothing answers at the address."""
    where = host_port(target.address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(
            f"No Ray cluster answers at {target.address!r} (from {target.setting}) within {timeout_s:g} s: "
            f"{exc.strerror or exc}. Check the address or start one with `dcloop cluster up`."
        ) from None


def auth_env(token_path: str | None) -> dict[str, str]:
    """Environment that makes a Ray client present the local head's token (token auth stays on)."""
    if token_path is None or "RAY_AUTH_TOKEN" in os.environ or "RAY_AUTH_TOKEN_PATH" in os.environ:
        return {}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": token_path}


def _use_token(token_path: str | None) -> dict[str, str | None]:
    """Set the token environment (returning what it replaced); Ray reads it when it loads, so an
    already loaded Ray re-reads it."""
    env = auth_env(token_path)
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    if "ray" in sys.modules and os.environ.get("RAY_AUTH_MODE") == "token":
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    return previous


def _restore(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def require_ray() -> None:
    """One error line naming the extra when Ray is not installed (the base install has none); finding
    it does not import it, so the check is cheap where Ray is there."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except ImportError:
        found = False
    if not found:
        raise ClusterError(f"dcloop's cluster commands need Ray, which is not installed: {INSTALL_RAY}.")


def version_mismatch(message: str, target: Target) -> str | None:
    """Ray's multi-line version check failure as one line naming both versions; None for other errors."""
    found = _MISMATCH.search(message)
    if found is None:
        return None
    cluster_ray, cluster_python, here_ray, here_python = found.groups()
    return (
        f"The Ray cluster at {target.address!r} ({target.setting}) runs Ray {cluster_ray} on Python "
        f"{cluster_python}, but this machine has Ray {here_ray} on Python {here_python}: they must match. "
        f'Install the cluster\'s here (pip install "ray[default,train,tune,serve]=={cluster_ray}" on Python '
        f"{cluster_python}) or use a cluster of Ray {here_ray}."
    )


@contextmanager
def connected(workspace: Workspace, address: str | None = None) -> Iterator[Target]:
    """Join the cluster for the block (leaving it afterwards); one error line when it cannot."""
    require_ray()
    target = resolve(workspace, address)
    timeout = workspace.config.cluster.connect_timeout_s
    probe(target, timeout)
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():  # joined already, e.g. by a loop turn
        yield target
        return
    previous = _use_token(target.token_path)  # this head's token, for this block only
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    import ray

    log.info("joining the Ray cluster at %s (%s)", target.address, target.setting)
    try:
        ray.init(
            address=target.address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False
        )
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        _restore(previous)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(
            version_mismatch(str(exc), target)
            or f"Cannot join the Ray cluster at {target.address!r} ({target.setting}): {first}"
        ) from None
    try:
        yield target
    finally:
        ray.shutdown()
        _restore(previous)
