"""A real two-node Ray cluster on loopback, and a workspace (on the folder both nodes share) that uses it.

Each node is its own ``ray start`` (own --temp-dir, own process group, --num-cpus 1, a custom resource
that names it); token authentication is on, with one token file both nodes and the test read. The
nodes are stopped by killing their process groups, so no other Ray on this machine is touched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dcloop.cluster._local import OBJECT_STORE_BYTES, start_node, stop_group
from dcloop.errors import ClusterError

HEAD_LABEL, WORKER_LABEL = "dcloop_test_head", "dcloop_test_b"


def blobs(n: int, size: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise images where each of 2 classes has a bright bar at its own height: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(0, 60, size=(n, 1, size, size)).astype(np.uint8)
    band = size // 2
    for k in range(2):
        x[y == k, :, k * band + 1 : (k + 1) * band - 1, 2 : size - 2] += 180
    return x, y.astype(np.int64)


@dataclass
class TwoNodes:
    address: str
    token: Path
    groups: dict[str, int]  # label -> process group of that node's daemons

    def raylet_pid(self, label: str) -> int:
        """The raylet process of the node started with ``label``."""
        import psutil

        for proc in psutil.process_iter(["pid", "name", "cmdline"]):
            try:
                if os.getpgid(proc.pid) == self.groups[label] and proc.info["name"] == "raylet":
                    return proc.pid
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
        raise LookupError(f"no raylet in the process group of node {label}")

    def kill_node(self, label: str) -> None:
        """Lose the node as a machine is lost: its raylet and every worker process it started die at once.

        Killing the raylet alone leaves its workers running until they notice, which a short job can outlive.
        """
        import psutil

        raylet = psutil.Process(self.raylet_pid(label))
        doomed = [raylet, *raylet.children(recursive=True)]
        for proc in doomed:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], env: dict[str, str], log: Path) -> int:
    """``ray start``, once more if it fails: Ray gives a node 30 s to register, which a loaded machine can miss."""
    try:
        return start_node(args, env, log)
    except ClusterError:
        return start_node(args, env, log)


@pytest.fixture(scope="session")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    folder = Path(f"/tmp/dcloop-t{secrets.token_hex(3)}")  # short: Ray's socket paths must fit 107 bytes
    folder.mkdir()
    token = folder / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})  # for this process too
    pytest.importorskip("ray")
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    port = _free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    common += ["--object-store-memory", str(OBJECT_STORE_BYTES)]
    groups: dict[str, int] = {}
    try:
        head = ["start", "--head", "--port", str(port), "--ray-client-server-port", str(_free_port())]
        head += ["--include-dashboard", "false", "--temp-dir", str(folder / "h")]
        groups[HEAD_LABEL] = _start(
            [*head, *common, "--resources", json.dumps({HEAD_LABEL: 1})], env, folder / "h.log"
        )
        other = ["start", "--address", f"127.0.0.1:{port}", "--temp-dir", str(folder / "b")]
        groups[WORKER_LABEL] = _start(
            [*other, *common, "--resources", json.dumps({WORKER_LABEL: 1})], env, folder / "b.log"
        )
        yield TwoNodes(f"127.0.0.1:{port}", token, groups)
    finally:
        for pgid in groups.values():
            stop_group(pgid)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cluster_workspace(two_nodes: TwoNodes, tmp_path: Path):
    """A workspace whose cluster.address is the two-node cluster, holding a prepared blob data set."""
    from dcloop import config
    from dcloop.data import import_source
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(tmp_path / "ws")
    x, y = blobs(n=1200, size=20)
    np.savez(tmp_path / "blobs.npz", x=x, y=y, classes=np.array(["cat", "dog"]))
    text = (
        "data:\n  image_size: 20\ntracking:\n  mlflow: false\n"
        f"cluster:\n  address: '{two_nodes.address}'\n  num_workers: 2\n  cpus_per_worker: 1\n"
    )
    (ws.root / "dcloop.yaml").write_text(text, encoding="utf-8")
    ws = open_workspace(ws.root, config.load(ws.root / "dcloop.yaml"))
    import_source(ws, str(tmp_path / "blobs.npz"), name="blobs")
    return ws
