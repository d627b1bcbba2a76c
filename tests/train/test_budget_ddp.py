"""Budgets and targets under data-parallel training (torchrun, 2 processes): rank 0 decides and every
rank stops with it (a rank that went on alone would hang in its next collective)."""

from __future__ import annotations

import pytest

from dcloop.config import TrainConfig
from dcloop.store import runs as store_runs
from dcloop.train import train


def _recipe(**update) -> TrainConfig:
    base = {"model": "tiny-cnn", "epochs": 20, "batch_size": 20, "lr": 0.01, "threads": 1, "ema_decay": 0.0}
    return TrainConfig(**(base | update))


@pytest.mark.slow
def test_two_processes_stop_together_at_the_target(blob_workspace) -> None:
    run = train(blob_workspace, _recipe(target_accuracy=0.9), nproc=2)
    spent = run.metrics["spent"]
    epochs = store_runs.list_epochs(blob_workspace.store, run.id)
    assert run.status == "finished" and spent["stopped_by"] == "target"
    assert len(epochs) == spent["to_target"]["epoch"] < 20
    assert epochs[-1].metrics["val_accuracy"] >= 0.9
    assert all(e.metrics["val_accuracy"] < 0.9 for e in epochs[:-1])


@pytest.mark.slow
def test_two_processes_stop_together_at_the_budget(blob_workspace) -> None:
    run = train(blob_workspace, _recipe(budget_s=6.0), nproc=2)
    spent = run.metrics["spent"]
    assert run.status == "finished" and spent["stopped_by"] == "budget"
    assert spent["epochs"] == len(store_runs.list_epochs(blob_workspace.store, run.id))
    assert spent["elapsed_s"] >= 6.0 - spent["validate_s"] - spent["checkpoint_s"]
