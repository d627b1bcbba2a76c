"""Finding the cluster without one running: which setting wins, and one fast error line when none answers."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from dcloop.cluster._connect import host_port, probe, resolve
from dcloop.errors import ClusterError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket closes


def _with_address(workspace, address: str):
    from dcloop import config
    from dcloop.workspace import open_workspace

    text = f"cluster:\n  address: '{address}'\n  connect_timeout_s: 2\n"
    (workspace.root / "dcloop.yaml").write_text(text, encoding="utf-8")
    return open_workspace(workspace.root, config.load(workspace.root / "dcloop.yaml"))


def test_without_any_address_the_error_says_how_to_get_one(workspace, monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(
        ClusterError, match=r"set `cluster.address` in dcloop.yaml or RAY_ADDRESS .* `dcloop cluster up`"
    ):
        resolve(workspace)


def test_flag_beats_environment_beats_config(workspace, monkeypatch) -> None:
    ws = _with_address(workspace, "10.0.0.1:6379")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve(ws).setting == "`cluster.address` in dcloop.yaml"
    monkeypatch.setenv("RAY_ADDRESS", "ray://10.0.0.2:10001")
    assert (resolve(ws).address, resolve(ws).setting) == ("ray://10.0.0.2:10001", "RAY_ADDRESS")
    assert resolve(ws, "auto").setting == "--address"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("ray://head:10001", ("head", 10001)),
        ("ray://head", ("head", 10001)),
        ("head:6380", ("head", 6380)),
        ("10.1.2.3", ("10.1.2.3", 6379)),
        ("[::1]:6379", ("::1", 6379)),
        ("auto", None),
    ],
)
def test_addresses_parse_to_the_port_probed(address: str, expected) -> None:
    assert host_port(address) == expected


def test_a_bad_port_is_one_line_naming_the_forms(workspace) -> None:
    with pytest.raises(ClusterError, match=r"'head:x' must be HOST:PORT, ray://HOST:PORT or auto"):
        host_port("head:x")


def test_an_unreachable_address_fails_naming_the_setting(workspace, monkeypatch) -> None:
    from dcloop.cluster import connected

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    port = _closed_port()
    ws = _with_address(workspace, f"127.0.0.1:{port}")
    with (
        pytest.raises(
            ClusterError, match=rf"No Ray cluster answers at '127.0.0.1:{port}' \(from `cluster.address`"
        ),
        connected(ws),
    ):
        pass
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_the_cli_prints_one_line_and_exits_non_zero(workspace) -> None:
    port = _closed_port()
    env = {"RAY_ADDRESS": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "cluster", "status"],
        cwd=workspace.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "from RAY_ADDRESS" in lines[0] and "Traceback" not in done.stderr


def test_probe_passes_a_listening_port() -> None:
    from dcloop.cluster._connect import Target

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        probe(Target(f"127.0.0.1:{server.getsockname()[1]}", "test"), timeout_s=2)


NO_RAY = '''
import sys


class _NoRay:
    """Finds no module named ray, as in an install without the ray extra."""

    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoRay())
'''


def _without_ray(tmp_path, *args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with a sitecustomize that makes every import of ray fail."""
    site = tmp_path / "noray"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_RAY, encoding="utf-8")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "RAY_ADDRESS": f"127.0.0.1:{_closed_port()}"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_without_ray_help_runs_and_cluster_commands_name_the_extra(workspace, tmp_path) -> None:
    blocked = _without_ray(tmp_path, "-c", "import ray")
    assert blocked.returncode != 0 and "No module named 'ray'" in blocked.stderr  # a real import failure
    helped = _without_ray(tmp_path, "-m", "dcloop.cli", "--help", cwd=workspace.root)
    assert helped.returncode == 0 and "cluster" in helped.stdout
    for command in (["cluster", "status"], ["cluster", "up"]):
        done = _without_ray(tmp_path, "-m", "dcloop.cli", *command, cwd=workspace.root)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert 'need Ray, which is not installed: pip install "dcloop[ray]"' in lines[0]
    assert not (workspace.state / "cluster" / "head.json").exists()  # nothing half-started


def test_a_ray_version_mismatch_is_one_line_naming_both_versions() -> None:
    import platform

    import ray
    from ray._private.utils import check_version_info

    from dcloop.cluster._connect import Target, version_mismatch

    cluster = {"ray_version": "2.9.3", "python_version": "3.10.14"}
    with pytest.raises(RuntimeError) as raised:  # Ray's own check, as ray.init runs it on joining
        check_version_info(cluster, "node 127.0.0.1")
    line = version_mismatch(str(raised.value), Target("10.0.0.5:6379", "RAY_ADDRESS"))
    assert line is not None and "\n" not in line
    assert f"runs Ray 2.9.3 on Python 3.10.14, but this machine has Ray {ray.__version__} on Python " in line
    assert platform.python_version() in line and "'10.0.0.5:6379' (RAY_ADDRESS)" in line
    assert version_mismatch("Failed to connect to GCS", Target("x:1", "--address")) is None


def test_a_folder_a_node_cannot_write_is_named_with_its_setting(tmp_path) -> None:
    from dcloop.cluster._reach import folder_problem

    (tmp_path / "file").write_text("x", encoding="utf-8")
    setting = "`cluster.storage_path`"
    assert folder_problem({setting: str(tmp_path)}) is None
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # the write probe leaves nothing behind
    gone = tmp_path / "gone"
    assert folder_problem({setting: str(gone)}) == f"{setting} {gone} does not exist"
    assert (
        folder_problem({setting: str(tmp_path / "file")}) == f"{setting} {tmp_path / 'file'} is not a folder"
    )
