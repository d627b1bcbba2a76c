"""The KubeRay manifests in docs/kuberay: the fields the operator and Kubernetes require, and a run that
matches dcloop (the entry point parses as a dcloop command, every pod mounts the shared workspace)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs" / "kuberay"


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DOCS / name).read_text(encoding="utf-8")) if d]


def _pods(job: dict) -> list[dict]:
    spec = job["spec"]["rayClusterSpec"]
    return [spec["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in spec["workerGroupSpecs"]
    ]


def test_rayjob_has_the_fields_kuberay_requires() -> None:
    (job,) = _docs("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["metadata"]["name"] and job["spec"]["entrypoint"]
    cluster = job["spec"]["rayClusterSpec"]
    assert isinstance(cluster["headGroupSpec"]["rayStartParams"], dict)
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for pod in _pods(job):
        for container in pod["containers"]:
            assert container["name"] and container["image"]
            requests, limits = container["resources"]["requests"], container["resources"]["limits"]
            assert set(requests) == set(limits) == {"cpu", "memory"}


def test_every_pod_mounts_the_shared_workspace_and_presents_the_token() -> None:
    (job,) = _docs("rayjob.yaml")
    claims = {d["metadata"]["name"] for d in _docs("pvc.yaml") if d["kind"] == "PersistentVolumeClaim"}
    secrets = {d["metadata"]["name"] for d in _docs("pvc.yaml") if d["kind"] == "Secret"}
    for pod in _pods(job):
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        for container in pod["containers"]:
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            assert mounts["/workspace"] in claims
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] in secrets
    (claim,) = [d for d in _docs("pvc.yaml") if d["kind"] == "PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every node reaches the checkpoints


def test_the_entrypoint_is_a_dcloop_command_the_cli_accepts() -> None:
    from typer.testing import CliRunner

    from dcloop.cli import app

    (job,) = _docs("rayjob.yaml")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "dcloop" and "--cluster" in argv
    train_args = argv[argv.index("train") :]
    result = CliRunner().invoke(app, [*train_args, "--help"])
    assert result.exit_code == 0, result.output
    cluster = job["spec"]["rayClusterSpec"]
    per_worker = float(argv[argv.index("--cpus-per-worker") + 1])
    workers = int(argv[argv.index("--num-workers") + 1])
    group = cluster["workerGroupSpecs"][0]
    assert float(group["rayStartParams"]["num-cpus"]) >= per_worker  # one worker fits a pod
    assert group["replicas"] * float(group["rayStartParams"]["num-cpus"]) >= workers * per_worker
