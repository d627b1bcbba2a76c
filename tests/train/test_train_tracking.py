"""MLflow mirroring is live: the MLflow run is open while training runs, each epoch's metrics arrive as
the epoch ends, and the run closes with the outcome (FINISHED, or KILLED for a stopped trial)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcloop import config
from dcloop.config import TrainConfig
from dcloop.workspace import open_workspace

pytestmark = pytest.mark.filterwarnings(
    "ignore:The ..noload.. loader strategy:DeprecationWarning"  # inside MLflow
)


class Stop(Exception):
    pass


@pytest.fixture
def tracked(blob_workspace):
    """The blob workspace with MLflow tracking on (its own SQLite store in .dcloop/)."""
    root = blob_workspace.root
    (root / "dcloop.yaml").write_text("data:\n  image_size: 20\n", encoding="utf-8")
    return open_workspace(root, config.load(root / "dcloop.yaml"))


def _client(ws):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=ws.mlflow_uri)


def _mlflow_run(ws, dcloop_id: str):
    client = _client(ws)
    experiment = client.get_experiment_by_name("dcloop")
    found = client.search_runs([experiment.experiment_id], f"tags.`dcloop.run_id` = '{dcloop_id}'")
    assert len(found) == 1
    return found[0]


def test_run_is_logged_while_it_trains(tracked, fast_recipe: TrainConfig) -> None:
    from dcloop.store import runs as store_runs
    from dcloop.train import train

    seen: list[tuple[str, list[int]]] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        (running,) = store_runs.unfinished_runs(tracked.store)
        mirror = _mlflow_run(tracked, running.id)
        history = _client(tracked).get_metric_history(mirror.info.run_id, "train_loss")
        seen.append((mirror.info.status, [m.step for m in history]))

    run = train(tracked, fast_recipe, on_epoch=on_epoch)
    # during epoch k the MLflow run was RUNNING and already held epochs 1..k
    assert seen == [("RUNNING", [1]), ("RUNNING", [1, 2]), ("RUNNING", [1, 2, 3])]
    mirror = _mlflow_run(tracked, run.id)
    assert mirror.info.status == "FINISHED" and run.metrics["mlflow_run_id"] == mirror.info.run_id
    assert mirror.info.end_time > mirror.info.start_time
    assert mirror.data.params["model"] == "tiny-cnn" and mirror.data.params["epochs"] == "3"
    assert mirror.data.metrics["test_accuracy"] == pytest.approx(run.metrics["accuracy"])
    artifacts = {f.path for f in _client(tracked).list_artifacts(mirror.info.run_id)}
    assert {"report.html", "metrics.json", "config.yaml"} <= artifacts


def test_stopped_run_is_killed_in_mlflow_with_the_epochs_it_ran(tracked, fast_recipe: TrainConfig) -> None:
    """A tuning trial the pruner stops shows in MLflow as KILLED, with its curve so far."""
    from dcloop.store import runs as store_runs
    from dcloop.train import train

    def stop_after_two(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(tracked, fast_recipe, kind="trial", on_epoch=stop_after_two)
    (stopped,) = store_runs.unfinished_runs(tracked.store)
    mirror = _mlflow_run(tracked, stopped.id)
    assert mirror.info.status == "KILLED" and mirror.data.tags["dcloop.kind"] == "trial"
    steps = [m.step for m in _client(tracked).get_metric_history(mirror.info.run_id, "train_loss")]
    assert steps == [1, 2]


def test_unreachable_tracking_server_only_warns(
    blob_workspace,
    fast_recipe: TrainConfig,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dcloop.train import train

    root: Path = blob_workspace.root
    (root / "dcloop.yaml").write_text(
        "data:\n  image_size: 20\ntracking:\n  mlflow_uri: http://127.0.0.1:9\n", encoding="utf-8"
    )
    ws = open_workspace(root, config.load(root / "dcloop.yaml"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    recipe = fast_recipe.model_copy(update={"epochs": 1})
    run = train(ws, recipe)
    assert run.status == "finished" and "mlflow_run_id" not in run.metrics
    warnings = [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "MLflow" in r.getMessage()
    ]
    assert len(warnings) == 1 and "127.0.0.1:9" in warnings[0], warnings
