"""Test-time views (``train.tta``): the averaged model, its ONNX export, and a run that answers with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from safetensors.torch import load_file

from dcloop.config import TrainConfig
from dcloop.errors import ConfigError, DataError
from dcloop.train import create_model, load_trained, predict_arrays, train
from dcloop.train._text_recipe import resolve_recipe
from dcloop.train._views import SHIFTS, ViewAverage, _shift, with_views, without_views


def _plain() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("tiny-cnn", 1, 3, 12).eval()


PLAIN = _plain()


@settings(max_examples=25, deadline=None)
@given(images=arrays(np.uint8, (2, 1, 12, 12)), views=st.sampled_from(["flip", "flip-shift"]))
def test_the_views_answer_a_mirror_image_as_they_answer_the_image(images: np.ndarray, views: str) -> None:
    model = with_views(PLAIN, views).eval()
    x = torch.from_numpy(images).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flip(-1)), atol=1e-5, rtol=1e-5)


def test_the_answer_is_the_mean_of_each_view_and_training_sees_the_image_alone() -> None:
    x, plain = torch.rand(4, 1, 12, 12), _plain()
    with torch.no_grad():
        flip = with_views(plain, "flip").eval()
        torch.testing.assert_close(flip(x), (plain(x) + plain(x.flip(-1))) / 2)
        views = [_shift(x, dy, dx) for dy, dx in SHIFTS]
        expected = torch.stack([plain(v) for v in views] + [plain(v.flip(-1)) for v in views]).mean(0)
        torch.testing.assert_close(with_views(plain, "flip-shift").eval()(x), expected)
        flip.train()
        assert plain.training  # the model it holds trains with it
        torch.testing.assert_close(flip(x), plain(x))


def test_a_shift_moves_the_image_one_pixel_and_repeats_its_edge() -> None:
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert _shift(x, 1, 0).tolist() == [[[[0, 1, 2], [0, 1, 2], [3, 4, 5]]]]
    assert _shift(x, 0, -1).tolist() == [[[[1, 2, 2], [4, 5, 5], [7, 8, 8]]]]
    assert _shift(x, 0, 0) is x


def test_none_is_the_plain_model_and_other_names_are_refused() -> None:
    assert with_views(PLAIN, "none") is PLAIN and with_views(PLAIN, None) is PLAIN
    assert without_views(with_views(PLAIN, "flip")) == (PLAIN, "flip")
    assert without_views(PLAIN) == (PLAIN, "none")
    with pytest.raises(ValueError, match="flip, flip-shift, not 'rotate'"):
        ViewAverage(PLAIN, "rotate")
    with pytest.raises(ValueError, match="tta"):
        TrainConfig(tta="rotate")  # type: ignore[arg-type]


def test_the_onnx_export_answers_with_the_views(tmp_path: Path) -> None:
    from dcloop.deploy._runtime import inspect_onnx
    from dcloop.optimize import check_parity, export_onnx

    x = np.random.default_rng(0).integers(0, 256, (40, 1, 12, 12), dtype=np.uint8)
    model = with_views(PLAIN, "flip-shift").eval()
    path = export_onnx(model, tmp_path / "views.onnx", (1, 12, 12))
    assert check_parity(model, path, x) < 1e-4  # real ONNX Runtime against PyTorch
    assert check_parity(PLAIN, path, x) > 1e-3  # and not the plain model's answers
    assert inspect_onnx(path) == ([1, 12, 12], 3)  # the server's contract: (N, C, H, W) in, (N, K) out


def _recipe(**kw: object) -> TrainConfig:
    base = {"model": "tiny-cnn", "epochs": 2, "batch_size": 32, "lr": 0.01, "threads": 1}
    return TrainConfig.model_validate({**base, **kw})


def test_a_run_with_views_records_them_tests_with_them_and_keeps_plain_weights(blob_workspace) -> None:
    run = train(blob_workspace, _recipe(tta="flip"))
    folder = Path(run.path)
    assert json.loads((folder / "model.json").read_text())["views"] == "flip"
    trained = load_trained(blob_workspace, run.id)
    assert isinstance(trained.model, ViewAverage) and trained.model.views == "flip"
    x, y = trained.dataset.arrays("test")
    pred, _ = predict_arrays(trained.model, x)
    assert run.metrics["accuracy"] == pytest.approx(float((pred == y).mean()))
    plain = create_model("tiny-cnn", 1, 2, 20)
    assert set(load_file(folder / "model.safetensors")) == set(plain.state_dict())
    tuned = train(blob_workspace, _recipe(epochs=1), kind="finetune", init_from=run.id)  # a plain model
    assert not isinstance(load_trained(blob_workspace, tuned.id).model, ViewAverage)
    spec = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**spec, "views": "rotate"}))
    with pytest.raises(
        DataError, match=r"model\.json: views must be one of none, flip, flip-shift, not 'rotate'"
    ):
        load_trained(blob_workspace, run.id)


def test_views_on_a_text_model_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"`train\.tta` flip averages views of images; text-tiny reads"):
        resolve_recipe(TrainConfig(model="text-tiny", tta="flip"), "text")
