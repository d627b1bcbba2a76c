"""train.compile: inductor where a C++ compiler is found, the eager loop (same weights) where none is."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.train import _compile, fit_model
from dcloop.train._loop import seed_everything
from dcloop.train._models import create_model


def _fit(data: PreparedDataset, recipe: TrainConfig):
    seed_everything(recipe.seed)  # the same initial weights for both runs
    return fit_model(create_model(recipe.model, 1, data.num_classes, 20), data, recipe)


def _recipe(**update) -> TrainConfig:
    base = {"model": "tiny-cnn", "epochs": 1, "batch_size": 32, "lr": 0.01, "threads": 2}
    return TrainConfig(**(base | update))


@pytest.mark.parametrize("hide", ["cxx", "path"])
def test_no_compiler_is_found_when_cxx_is_missing_or_path_is_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path, hide: str
) -> None:
    if hide == "cxx":
        monkeypatch.setenv("CXX", "/nonexistent/g++")
    else:
        monkeypatch.delenv("CXX", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
    assert _compile.cxx_compiler() is None


def test_cxx_names_the_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _compile.cxx_compiler()
    if found is None:
        pytest.skip("no C++ compiler on this machine")
    monkeypatch.setenv("CXX", found)
    assert _compile.cxx_compiler() == found


def test_without_a_compiler_training_is_eager_with_one_notice_and_the_same_weights(
    blob_data: PreparedDataset, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    eager = _fit(blob_data, _recipe())
    monkeypatch.setenv("CXX", "/nonexistent")
    with caplog.at_level(logging.WARNING, logger="dcloop.train._compile"):
        fallback = _fit(blob_data, _recipe(compile=True))
    notices = [r.getMessage() for r in caplog.records if r.name == "dcloop.train._compile"]
    assert len(notices) == 1 and "no C++ compiler" in notices[0] and "/nonexistent" in notices[0]
    assert "\n" not in notices[0]
    assert fallback.spent["compile_s"] == 0.0
    for key, value in eager.model.state_dict().items():
        assert torch.equal(value, fallback.model.state_dict()[key]), key


def test_compile_off_is_the_default() -> None:
    assert TrainConfig().compile is False


@pytest.mark.slow
def test_compiled_training_learns_and_reports_its_compile_time(blob_data: PreparedDataset) -> None:
    if _compile.cxx_compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    result = _fit(blob_data, _recipe(compile=True, epochs=3, precision="fp32"))
    assert result.spent["compile_s"] > 0
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    assert result.history[-1]["val_accuracy"] >= 0.9
