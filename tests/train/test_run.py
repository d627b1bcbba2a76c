"""train(): a recorded run, its artifacts and lineage; kill-and-resume equals an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from dcloop.config import TrainConfig
from dcloop.errors import ConfigError, NotFoundError, TrainError
from dcloop.store import runs as store_runs
from dcloop.train import evaluate, load_trained, train


class Killed(Exception):
    pass


def _recipe(**kw: object) -> TrainConfig:
    base = {"model": "tiny-cnn", "epochs": 3, "batch_size": 32, "lr": 0.01, "threads": 1}
    return TrainConfig.model_validate({**base, **kw})


def test_run_records_everything(blob_workspace) -> None:
    run = train(blob_workspace, _recipe(), name="first")
    assert run.status == "finished" and run.name == "first" and run.finished_at is not None
    folder = Path(run.path)
    assert folder == blob_workspace.runs_dir / run.id
    for name in ("model.safetensors", "model.json", "config.yaml", "metrics.json", "report.html"):
        assert (folder / name).is_file(), name
    assert (folder / "checkpoint" / "latest").is_file()
    assert not list(folder.rglob("*.tmp")) and not list((folder / "checkpoint").glob(".epoch-*"))
    spec = json.loads((folder / "model.json").read_text())
    assert spec["model"] == "tiny-cnn" and spec["classes"] == ["cat", "dog"]
    assert spec["kwargs"] == {"in_channels": 1, "num_classes": 2, "image_size": 20, "width": 16}
    assert spec["input"]["dtype"] == "float32" and spec["input"]["shape"] == [None, 1, 20, 20]
    assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["model"] == "tiny-cnn"
    m = run.metrics
    assert m["accuracy"] >= 0.9 and 0 <= m["roc_auc"] <= 1 and len(m["confusion_matrix"]) == 2
    assert (
        sum(map(sum, m["confusion_matrix"]))
        == m["n"]
        == len(load_trained(blob_workspace, run.id).dataset.splits["test"])
    )
    assert m["cost"]["wall_s"] > 0 and m["cost"]["energy_source"] and m["images_per_s"] > 0
    lineage = run.lineage
    assert lineage["seed"] == 0 and lineage["dataset_id"] == run.dataset_id
    assert (
        set(lineage["versions"]) >= {"python", "torch", "numpy", "dcloop"}
        and lineage["host"]["cpu_count"] >= 1
    )
    assert "code" in lineage  # None outside a git checkout, else commit + dirty
    epochs = store_runs.list_epochs(blob_workspace.store, run.id)
    assert [e.epoch for e in epochs] == [1, 2, 3] and "val_accuracy" in epochs[0].metrics
    assert "<img" in (folder / "report.html").read_text()


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_kill_and_resume_gives_the_same_weights(blob_workspace, ema_decay: float) -> None:
    recipe = _recipe(epochs=4, ema_decay=ema_decay)  # augmentation on: the RNG state must survive too
    whole = train(blob_workspace, recipe)

    def kill_after_two(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train(blob_workspace, recipe, on_epoch=kill_after_two)
    killed = store_runs.list_runs(blob_workspace.store)[-1]
    assert killed.status == "stopped" and not (Path(killed.path) / "model.safetensors").exists()
    resumed = train(blob_workspace, recipe.model_copy(update={"lr": 0.5}), resume="latest")  # own recipe wins
    assert resumed.id == killed.id and resumed.status == "finished"
    a = load_file(str(Path(whole.path) / "model.safetensors"))
    b = load_file(str(Path(resumed.path) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [e.epoch for e in store_runs.list_epochs(blob_workspace.store, resumed.id)] == [1, 2, 3, 4]
    assert resumed.metrics["accuracy"] == whole.metrics["accuracy"]


def test_resume_errors(blob_workspace) -> None:
    with pytest.raises(TrainError, match="No unfinished run with a checkpoint"):
        train(blob_workspace, _recipe(), resume="latest")
    done = train(blob_workspace, _recipe(epochs=1))
    with pytest.raises(TrainError, match=f"Run {done.id[:12]} already finished"):
        train(blob_workspace, _recipe(), resume=done.id)
    with pytest.raises(NotFoundError, match="No run 'feedbeef'"):
        train(blob_workspace, _recipe(), resume="feedbeef")


def test_bad_names_and_data_fail_before_any_run_exists(blob_workspace) -> None:
    with pytest.raises(NotFoundError, match=r"Unknown optimizer 'adamm'.*Did you mean 'adam' or 'adamw'"):
        train(blob_workspace, _recipe(optimizer="adamm"))
    with pytest.raises(
        ConfigError, match=r"`train\.device` must be auto, cpu or an available cuda device\. Got 'tpu'"
    ):
        train(blob_workspace, _recipe(device="tpu"))
    with pytest.raises(NotFoundError, match="No data set version 'nope'"):
        train(blob_workspace, _recipe(), "nope")
    assert store_runs.list_runs(blob_workspace.store) == []


def test_failed_run_is_marked_failed(blob_workspace) -> None:
    base = train(blob_workspace, _recipe(epochs=1))
    with pytest.raises(TrainError, match=f"Weights of run {base.id[:12]} do not fit model 'seed-cnn'"):
        train(blob_workspace, _recipe(model="seed-cnn", epochs=1), init_from=base.id)
    failed = store_runs.list_runs(blob_workspace.store)[-1]
    assert failed.status == "failed" and "TrainError" in failed.metrics["error"]
    assert not (Path(failed.path) / "model.safetensors").exists()


def test_warm_start_evaluate_and_load_trained(blob_workspace) -> None:
    base = train(blob_workspace, _recipe(epochs=2))
    tuned = train(blob_workspace, _recipe(epochs=1, lr=1e-4), kind="finetune", init_from=base.id[:10])
    assert (
        tuned.parent_run_id == base.id and tuned.lineage["init_from"] == base.id and tuned.kind == "finetune"
    )
    assert tuned.metrics["accuracy"] >= base.metrics["accuracy"] - 0.05  # kept what the base learnt
    trained = load_trained(blob_workspace, tuned.id)
    assert not trained.model.training and trained.dataset.id == tuned.dataset_id
    result = evaluate(blob_workspace, tuned.id)
    assert result["run"] == tuned.id and result["accuracy"] == tuned.metrics["accuracy"]


def test_on_epoch_needs_one_process(blob_workspace) -> None:
    with pytest.raises(TrainError, match="on_epoch callback needs nproc=1"):
        train(blob_workspace, _recipe(), nproc=2, on_epoch=lambda e, m: None)


def _without_validation(ws):  # the blob images prepared again with data.val_fraction 0
    from dcloop.config import with_overrides
    from dcloop.data import load_dataset, prepare_dataset
    from dcloop.workspace import open_workspace

    ws = open_workspace(ws.root, with_overrides(ws.config, "data", {"val_fraction": 0.0}))
    return ws, load_dataset(ws, prepare_dataset(ws).id)


def test_a_version_without_validation_trains_on_every_non_test_image(blob_workspace) -> None:
    from dcloop.data import load_dataset

    held = load_dataset(blob_workspace)
    ws, version = _without_validation(blob_workspace)
    assert len(version.splits["val"]) == 0 and list(version.splits["test"]) == list(held.splits["test"])
    assert len(version.splits["train"]) == len(held.splits["train"]) + len(held.splits["val"])
    run = train(ws, _recipe(), version.id)  # nothing to choose weights by: the last ones
    assert run.status == "finished" and run.metrics["accuracy"] >= 0.9
    assert run.metrics["best_epoch"] == 3 and run.metrics["best_val"] is None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"target_accuracy": 0.9}, r"`train\.target_accuracy`"),
        ({"early_stopping_patience": 2}, r"`train\.early_stopping_patience`"),
        ({"val_every_steps": 2}, r"`train\.val_every_steps`"),
        ({"schedule": "plateau"}, r"`train\.schedule` plateau"),
    ],
)
def test_a_version_without_validation_refuses_what_follows_validation(
    blob_workspace, fields: dict[str, object], named: str
) -> None:
    ws, version = _without_validation(blob_workspace)
    message = f"{named} follows validation, but data set version {version.id[:12]} has no validation split"
    with pytest.raises(ConfigError, match=message):
        train(ws, _recipe(**fields), version.id)
    assert store_runs.list_runs(ws.store) == []  # refused before a run was opened
