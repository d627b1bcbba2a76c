"""An optimization mirrored to MLflow: one parent run holding the report, one child run per variant
with the variant's own measurements."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore:The ..noload.. loader strategy:DeprecationWarning"  # inside MLflow
)


def test_optimize_logs_a_parent_run_and_one_child_per_variant(ws_with, trained_run) -> None:
    from mlflow.tracking import MlflowClient

    from dcloop.optimize import optimize

    ws = ws_with(tracking={"mlflow": True})
    result = optimize(ws, trained_run.id, methods=["onnx"])
    client = MlflowClient(tracking_uri=ws.mlflow_uri)
    experiment = client.get_experiment_by_name("dcloop")
    assert experiment is not None
    tagged = f"tags.`dcloop.optimization_id` = '{result.id}'"
    (parent,) = client.search_runs(
        [experiment.experiment_id], f"{tagged} and tags.`dcloop.kind` = 'optimize'"
    )
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert parent.info.status == "FINISHED" and parent.data.tags["dcloop.run_id"] == trained_run.id
    assert {f.path for f in client.list_artifacts(parent.info.run_id)} == {result.report_path.name}
    by_variant = {c.data.tags["dcloop.variant_id"]: c for c in children}
    assert set(by_variant) == {v.id for v in result.variants}
    for variant in result.variants:
        logged = by_variant[variant.id].data.metrics
        assert logged["accuracy"] == pytest.approx(variant.metrics["accuracy"])
