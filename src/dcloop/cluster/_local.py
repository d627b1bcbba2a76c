"""`dcloop cluster up/down`: a one-machine Ray head for trying `--cluster` without a real cluster.

The head runs under ``ray start`` in a session of its own, so `down` stops exactly its process group
(``ray stop`` would stop every Ray process of this user, other clusters included). Its node address
is the loopback one and Ray's token authentication is on: the token lives in the workspace
(``.dcloop/cluster/auth_token``, mode 600) and clients of this head present it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dcloop.atomic import write_text
from dcloop.cluster._connect import HEAD_FILE, local_head, require_ray, state_dir
from dcloop.errors import ClusterError
from dcloop.workspace import Workspace

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
OBJECT_STORE_BYTES = 200 * 1024 * 1024  # enough for task arguments; Ray's default takes 30% of RAM


def ray_command() -> list[str]:
    """The ``ray`` CLI of this interpreter's environment (the nodes must run the same dcloop)."""
    script = Path(sys.executable).with_name("ray")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ray.scripts.scripts"]


def temp_dir_for(workspace: Workspace) -> Path:
    """A short per-workspace folder: Ray's socket paths must fit in 107 bytes."""
    digest = hashlib.sha256(str(workspace.root.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"dcloop-ray-{digest}"


RAY_DEFAULT_PORT = 6379


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def head_port(port: int | None) -> int:
    """``port`` when it and the client port after it are free; with none given Ray's 6379, or, where
    something else holds it (a Redis server often does), the first free pair above it."""
    if port is not None:
        if not (_free(port) and _free(port + 1)):
            raise ClusterError(
                f"Port {port} or {port + 1} on {LOOPBACK} is in use (a Redis server or another Ray head?); "
                "choose another with `dcloop cluster up --port`."
            )
        return port
    for candidate in range(RAY_DEFAULT_PORT, RAY_DEFAULT_PORT + 200, 2):
        if _free(candidate) and _free(candidate + 1):
            return candidate
    raise ClusterError(f"No free port pair on {LOOPBACK} from {RAY_DEFAULT_PORT}; give one with --port.")


def cluster_up(workspace: Workspace, num_cpus: int | None = None, port: int | None = None) -> dict[str, Any]:
    """Start a local head (if none is running for this workspace) and record how to reach it.

    ``port`` defaults to Ray's 6379, or the next free pair when something else listens there."""
    require_ray()
    head = local_head(workspace)
    if head is not None and _alive(int(head["pgid"])):
        raise ClusterError(
            f"A local Ray head already runs for this workspace at {head['address']}; "
            "`dcloop cluster down` stops it."
        )
    folder = state_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    token = folder / "auth_token"
    if not token.is_file():
        write_text(token, secrets.token_hex(32))
    token.chmod(0o600)
    temp = temp_dir_for(workspace)
    port = head_port(port)
    args = ["start", "--head", "--node-ip-address", LOOPBACK, "--port", str(port)]
    args += ["--ray-client-server-port", str(port + 1), "--temp-dir", str(temp)]
    args += [
        "--disable-usage-stats",
        "--include-dashboard",
        "false",
        "--object-store-memory",
        str(OBJECT_STORE_BYTES),
    ]
    args += ["--num-cpus", str(num_cpus)] if num_cpus is not None else []
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_AUTH_TOKEN", None)
    pgid = start_node(args, env, folder / "head.log")
    record = {
        "address": f"{LOOPBACK}:{port}",
        "client_address": f"ray://{LOOPBACK}:{port + 1}",
        "pgid": pgid,
        "temp_dir": str(temp),
        "token_path": str(token),
        "num_cpus": num_cpus,
        "started_at": time.time(),
    }
    write_text(folder / HEAD_FILE, json.dumps(record, indent=2))
    return record


def start_node(args: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run ``ray start ARGS`` in a new session; the node's daemons keep that session's process group."""
    with log_path.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [*ray_command(), *args], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            code = proc.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop_group(proc.pid)
            raise ClusterError(
                f"`ray start` did not finish in {START_TIMEOUT_S:g} s; see {log_path}."
            ) from None
    if code != 0:
        stop_group(proc.pid)
        tail = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()][-1:]
        raise ClusterError(
            f"`ray start` failed (exit {code}): {' '.join(tail) or 'no output'}; see {log_path}."
        )
    return proc.pid


def cluster_down(workspace: Workspace) -> bool:
    """Stop this workspace's local head; False when none was recorded."""
    head = local_head(workspace)
    if head is None:
        return False
    stop_group(int(head["pgid"]))
    shutil.rmtree(str(head["temp_dir"]), ignore_errors=True)  # the head's logs and sockets
    (state_dir(workspace) / HEAD_FILE).unlink(missing_ok=True)
    return True


def stop_group(pgid: int) -> None:
    """SIGTERM the node's process group, SIGKILL what is left after STOP_TIMEOUT_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and _alive(pgid):
            time.sleep(0.2)  # polling the group: there is no wait() for processes we did not fork
        if not _alive(pgid):
            return
    log.warning("process group %d still has members after SIGKILL", pgid)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
