"""The registry mirrored to MLflow's model registry: `dcloop models register/promote/rollback` leave
MLflow holding every version's ONNX file and the aliases exactly where the workspace has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploykit import CLASSES

pytestmark = pytest.mark.filterwarnings(
    "ignore:The ..noload.. loader strategy:DeprecationWarning"  # inside MLflow
)


def test_registry_commands_mirror_versions_and_aliases(workspace, onnx_path: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from dcloop.cli import app

    monkeypatch.chdir(workspace.root)
    runner = CliRunner()

    def cli(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--format", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    classes = ",".join(CLASSES)
    cli("models", "register", str(onnx_path), "--name", "pets", "--classes", classes, "--alias", "champion")
    cli("models", "register", str(onnx_path), "--name", "pets", "--classes", classes, "--alias", "challenger")
    client = MlflowClient(tracking_uri=workspace.mlflow_uri)

    def aliases() -> dict[str, int]:
        return dict(client.get_registered_model("pets").aliases)

    versions = client.search_model_versions("name = 'pets'")
    assert sorted(v.tags["dcloop.version"] for v in versions) == ["1", "2"]
    assert aliases() == {"champion": 1, "challenger": 2}
    # the ONNX file itself is in MLflow, byte for byte
    v2 = client.get_model_version_by_alias("pets", "challenger")
    assert v2.run_id is not None
    local = client.download_artifacts(v2.run_id, "model.onnx", str(workspace.root / "dl"))
    assert Path(local).read_bytes() == onnx_path.read_bytes()

    cli("models", "promote", "pets", "--force", "--reason", "test")
    assert aliases() == {"champion": 2}  # promotion clears the challenger
    cli("models", "rollback", "pets")
    assert aliases() == {"champion": 1}
    assert len(client.search_model_versions("name = 'pets'")) == 2  # nothing registered twice


def test_monitor_check_is_recorded_with_its_figures_and_report(served_ws, tmp_path: Path) -> None:
    import numpy as np
    from mlflow.tracking import MlflowClient

    from dcloop.deploy._registry import get_model_version
    from dcloop.feedback._mirror import mirror_monitor
    from dcloop.feedback._monitor import monitor
    from dcloop.store.predictions import add_labels, log_predictions, new_predictions

    rng = np.random.default_rng(0)
    n = 60
    rows = new_predictions(
        rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8),
        rng.dirichlet(np.ones(2), n),
        CLASSES,
        get_model_version(served_ws, "pets@1"),
        latency_ms=[2.0] * n,
        store_input=False,
    )
    log_predictions(served_ws.store, rows)
    add_labels(served_ws.store, [(p.id, int(rng.integers(2))) for p in rows[:40]])
    result = monitor(served_ws, "pets", report=tmp_path / "monitor.html", export_alerts=False)
    run_id = mirror_monitor(served_ws, result)
    assert run_id is not None
    logged = MlflowClient(tracking_uri=served_ws.mlflow_uri).get_run(run_id)
    (health,) = result.versions
    assert logged.data.metrics["pets.v1.labelled"] == health.labelled == 40
    assert logged.data.metrics["pets.v1.accuracy"] == pytest.approx(health.accuracy)
    assert logged.data.metrics["alerts"] == len(result.alerts)
    assert logged.data.tags["dcloop.kind"] == "monitor"
    artifacts = MlflowClient(tracking_uri=served_ws.mlflow_uri).list_artifacts(run_id)
    assert [a.path for a in artifacts] == ["monitor.html"]
