"""`dcloop serve --cluster`: the server's app as Ray Serve replicas on the two-node loopback cluster.

The ray tests share one deployment, started through the CLI as a user starts it and stopped with
SIGTERM by the last of them: answers equal the single-process server's, a replica killed under load
loses no acknowledged prediction. The config and flag checks run in the default suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from dcloop import config
from dcloop.cli import app
from dcloop.errors import ClusterError, ConfigError

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1] / "deploy")
)  # deploykit: the deploy tests' helpers
from deploykit import CLASSES, free_port, serving, tiny_cnn_onnx

TOKEN = "s3cret"
HEAD_LABEL, WORKER_LABEL = "dcloop_test_head", "dcloop_test_b"  # the nodes' custom resources (conftest)
REPLICA = "ServeReplica:dcloop:server"  # the title Ray gives a replica actor's process


def test_serve_replica_bounds_are_checked_with_the_field_named() -> None:
    with pytest.raises(
        ConfigError, match=r"serve_min_replicas \(3\) must not exceed serve_max_replicas \(2\)"
    ):
        config.validate({"cluster": {"serve_min_replicas": 3, "serve_max_replicas": 2}}, source="dcloop.yaml")
    with pytest.raises(ConfigError, match=r"`cluster.serve_cpus_per_replica` in dcloop.yaml .* Got 0"):
        config.validate({"cluster": {"serve_cpus_per_replica": 0}}, source="dcloop.yaml")
    settings = config.validate({}, source="dcloop.yaml").cluster
    assert (settings.serve_min_replicas, settings.serve_max_replicas, settings.serve_cpus_per_replica) == (
        1,
        2,
        1,
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--replicas", "2"], "--replicas is only read with --cluster: dcloop serve --cluster --replicas 2."),
        (["--cluster", "--workers", "2"], "--workers is for the single-process server; with --cluster use"),
    ],
)
def test_serve_refuses_flags_that_do_not_go_together(flags: list[str], expected: str, served_ws) -> None:
    result = CliRunner().invoke(app, ["serve", *flags], env={"DCLOOP_WORKSPACE": str(served_ws.root)})
    assert result.exit_code != 0  # refused before any server or cluster starts
    assert isinstance(result.exception, ConfigError) and str(result.exception).startswith(expected)


def test_serve_on_the_cluster_refuses_a_port_the_system_picks(served_ws) -> None:
    from dcloop.cluster import serve_on_cluster

    with pytest.raises(ConfigError, match=r"`serve.port` must be a fixed port with --cluster .* Got 0"):
        serve_on_cluster(served_ws, replicas=1, port=0)


def test_serve_refuses_zero_replicas(served_ws) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--cluster", "--replicas", "0"], env={"DCLOOP_WORKSPACE": str(served_ws.root)}
    )
    assert result.exit_code == 2 and "--replicas" in result.output


def test_an_unreachable_cluster_is_one_error_naming_the_setting(served_ws) -> None:
    from dcloop.cluster import serve_on_cluster

    served_ws.config.cluster.address = f"127.0.0.1:{free_port()}"  # nothing listens there
    served_ws.config.cluster.connect_timeout_s = 2.0
    with pytest.raises(
        ClusterError, match=r"No Ray cluster answers at .* \(from `cluster.address` in dcloop.yaml\)"
    ):
        serve_on_cluster(served_ws, replicas=2, port=free_port())


@pytest.fixture
def served_ws(workspace, tmp_path: Path):
    """A workspace with pets@1 (tiny-cnn) registered and promoted to champion."""
    from dcloop.deploy import promote, register_model_version

    register_model_version(workspace, tiny_cnn_onnx(tmp_path / "tiny.onnx"), name="pets", classes=CLASSES)
    promote(workspace, "pets", version=1)
    return workspace


@dataclass
class Deployment:
    url: str
    workspace: Any
    process: subprocess.Popen[str]
    raylets: list[int]  # the two nodes' raylets: replica actors are their child processes
    stderr: list[str]  # what the command has printed so far

    def replica_pids(self) -> list[int]:
        """This deployment's replica actor processes (Ray titles them; other Ray clusters here are
        not looked at)."""
        import psutil

        found = []
        for raylet in self.raylets:
            for child in psutil.Process(raylet).children():
                try:
                    if REPLICA in (child.cmdline() or [""])[0]:
                        found.append(child.pid)
                except psutil.NoSuchProcess:
                    continue
        return sorted(found)


@pytest.fixture(scope="module")
def deployment(two_nodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """`dcloop serve --cluster --replicas 2 --follow-champion` in a child process, on a workspace both
    nodes reach."""
    ws = _cluster_workspace(two_nodes.address, tmp_path_factory.mktemp("serve"))
    port = free_port()
    env = {**os.environ, "DCLOOP_WORKSPACE": str(ws.root), "DCLOOP_TOKEN": TOKEN}
    command = [sys.executable, "-m", "dcloop.cli", "serve", "--cluster", "--replicas", "2"]
    command += ["--port", str(port), "--follow-champion", "--follow-every", "0.5"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        # the notice comes once every replica runs (the proxy answers as soon as one does)
        _wait_for(lambda: "serving on" in "".join(lines) or process.poll() is not None, "start", 480)
        assert process.poll() is None, "".join(lines)[-3000:]
        raylets = [two_nodes.raylet_pid(label) for label in (HEAD_LABEL, WORKER_LABEL)]
        yield Deployment(url, ws, process, raylets, lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)


def _cluster_workspace(address: str, folder: Path) -> Any:
    """A workspace using the test cluster, with pets@1 (tiny-cnn) registered and promoted to champion."""
    from dcloop.deploy import promote, register_model_version
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(folder / "ws")
    text = f"tracking:\n  mlflow: false\ncluster:\n  address: '{address}'\n"
    (ws.root / "dcloop.yaml").write_text(text, encoding="utf-8")
    ws = open_workspace(ws.root)
    register_model_version(ws, tiny_cnn_onnx(folder / "tiny.onnx"), name="pets", classes=CLASSES)
    promote(ws, "pets", version=1)
    return ws


@pytest.mark.ray
@pytest.mark.slow
def test_two_replicas_answer_as_the_single_process_server_does(deployment: Deployment) -> None:
    from dcloop.deploy import create_app
    from dcloop.store.predictions import list_predictions

    assert len(deployment.replica_pids()) == 2
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    pixels = np.random.default_rng(1).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    on_cluster = _answers(deployment.url, x, pixels)
    with serving(create_app(deployment.workspace, "pets@champion", token=TOKEN)) as url:
        single = _answers(url, x, pixels)
    np.testing.assert_allclose(on_cluster["logits"], single["logits"], atol=1e-5)
    np.testing.assert_allclose(on_cluster["probabilities"], single["probabilities"], atol=1e-5)
    assert on_cluster["labels"] == single["labels"]
    stored = {p.id for p in list_predictions(deployment.workspace.store)}
    assert set(on_cluster["ids"]) <= stored and len(stored) == 2 * (len(x) + len(pixels))


def _answers(url: str, x: np.ndarray, pixels: np.ndarray) -> dict[str, list]:
    """Logits from the stock Triton client, then /predict answers for single images, from one server."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    try:
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer("pets", [inp], outputs=[httpclient.InferRequestedOutput("logits")])
        ids = result.get_response()["parameters"]["prediction_ids"].split(",")
        logits = result.as_numpy("logits")
    finally:
        client.close()
    answers = [httpx.post(f"{url}/predict", json={"pixels": p.tolist()}, timeout=60).json() for p in pixels]
    return {
        "logits": logits.tolist(),
        "probabilities": [[a["probabilities"][c] for c in CLASSES] for a in answers],
        "labels": [a["label"] for a in answers],
        "ids": ids + [a["prediction_id"] for a in answers],
    }


@pytest.mark.ray
@pytest.mark.slow
def test_a_replica_killed_under_load_loses_no_acknowledged_prediction(deployment: Deployment) -> None:
    from dcloop.store.predictions import list_predictions

    before = deployment.replica_pids()
    answered: list[str] = []
    failed: list[str] = []
    body = {"pixels": np.full((28, 28), 9).tolist()}
    killed = threading.Event()

    def send() -> None:
        """Requests one after another; one that fails is retried, as a client would."""
        with httpx.Client(base_url=deployment.url, timeout=60) as http:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and len(answered) < 60:
                try:
                    r = http.post("/predict", json=body)
                except httpx.TransportError as exc:
                    failed.append(type(exc).__name__)
                    continue
                if r.status_code == 200:
                    answered.append(r.json()["prediction_id"])
                else:
                    failed.append(str(r.status_code))
                if len(answered) >= 40 and not killed.is_set():
                    break  # wait for the kill to have happened before finishing

    client = threading.Thread(target=send)
    client.start()
    _wait_for(lambda: len(answered) >= 10, "10 answers before the kill")
    os.kill(before[0], signal.SIGKILL)  # the replica actor's process dies mid-stream
    killed.set()
    client.join(timeout=300)
    assert not client.is_alive()
    _wait_for(
        lambda: len(deployment.replica_pids()) == 2 and before[0] not in deployment.replica_pids(),
        "Ray to replace it",
    )
    stored = {p.id for p in list_predictions(deployment.workspace.store, with_inputs=False)}
    assert len(answered) >= 10 and set(answered) <= stored  # every 200 had its row committed first
    assert len(set(answered)) == len(answered)
    after = httpx.post(f"{deployment.url}/predict", json=body, timeout=60)
    assert after.status_code == 200 and after.json()["prediction_id"] not in answered


@pytest.mark.ray
@pytest.mark.slow
def test_both_replicas_follow_the_champion_without_dropping_a_request(
    deployment: Deployment, tmp_path
) -> None:
    from dcloop.deploy import promote, register_model_version

    register_model_version(
        deployment.workspace, tiny_cnn_onnx(tmp_path / "v2.onnx", seed=3), name="pets", classes=CLASSES
    )
    body = {"pixels": np.full((28, 28), 7).tolist()}
    answers: list[tuple[int, str]] = []
    with httpx.Client(base_url=deployment.url, timeout=60) as http:

        def ask() -> str:
            r = http.post("/predict", json=body)
            answers.append((r.status_code, r.json().get("model_version", r.text)))
            return answers[-1][1]

        ask()
        promote(deployment.workspace, "pets", version=2, force=True, reason="test")
        # the proxy spreads requests over both replicas: 12 answers in a row from v2 means both switched
        _wait_for(lambda: ask() == "pets@2" and all(ask() == "pets@2" for _ in range(11)), "both on v2")
    assert answers[0] == (200, "pets@1")
    assert {status for status, _ in answers} == {200}  # no request failed while the replicas switched
    assert {version for _, version in answers} == {"pets@1", "pets@2"}


@pytest.mark.ray
@pytest.mark.slow
def test_a_request_no_node_can_meet_or_a_running_serve_is_refused_before_deploying(
    deployment: Deployment,
) -> None:
    from dcloop.cluster._serve import deployed
    from dcloop.workspace import open_workspace

    ws = open_workspace(deployment.workspace.root)
    ws.config.cluster.serve_cpus_per_replica = 4.0
    refused = r"cannot hold 2 serving replicas: it needs 2 x 4 CPU .* 1 CPU"
    with pytest.raises(ClusterError, match=refused), deployed(ws, replicas=2, port=free_port()):
        pass
    running = r"already runs dcloop \(another `dcloop serve --cluster`\?\)"
    with pytest.raises(ClusterError, match=running), deployed(open_workspace(ws.root), port=free_port()):
        pass
    assert httpx.get(f"{deployment.url}/v2/health/ready", timeout=30).status_code == 200  # untouched


@pytest.mark.ray
@pytest.mark.slow
def test_sigterm_shuts_the_deployment_down_cleanly(deployment: Deployment) -> None:
    deployment.process.send_signal(signal.SIGTERM)
    deployment.process.wait(timeout=180)
    err = "".join(deployment.stderr)
    assert deployment.process.returncode == 0, err[-3000:]
    assert f"serving on {deployment.url} with 2 replicas (Ctrl-C stops)" in " ".join(err.split())
    _wait_for(lambda: not deployment.replica_pids(), "the replicas to stop")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{deployment.url}/v2/health/ready", timeout=5)


@pytest.mark.ray
@pytest.mark.slow
def test_replicas_that_cannot_load_the_model_are_one_error_and_leave_nothing_deployed(
    two_nodes, tmp_path
) -> None:
    from ray import serve

    from dcloop.cluster import connected
    from dcloop.cluster._serve import deployed
    from dcloop.deploy import get_model_version

    ws = _cluster_workspace(two_nodes.address, tmp_path)
    Path(get_model_version(ws, "pets@1").path).unlink()  # the record stays; each replica fails to load it
    failed = r"^The serving replicas did not start: .*NotFoundError: pets@champion's file .* is not on node"
    with pytest.raises(ClusterError, match=failed), deployed(ws, replicas=1, port=free_port()):
        pass
    with connected(ws):
        assert serve.status().applications == {}  # shut down, not left retrying


def _wait_for(condition, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(0.2)
