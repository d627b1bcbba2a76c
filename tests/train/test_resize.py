"""Progressive resizing (``train.resize_share``): which steps train on smaller images, and at what size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.train import create_model, fit_model
from dcloop.train._resize import reduced_size, resized

RESNET = create_model("resnet-s", 1, 2, 28, width=8)
FIXED = create_model("seed-cnn", 1, 2, 28)


@settings(max_examples=60, deadline=None)
@given(
    side=st.integers(1, 96),
    scale=st.floats(0.01, 1.0),
    share=st.floats(0.0, 0.99),
    square=st.booleans(),
)
def test_the_reduced_side_is_smaller_than_the_image_and_never_under_8(
    side: int, scale: float, share: float, square: bool
) -> None:
    recipe = TrainConfig(resize_share=share, resize_scale=scale)
    shape = (1, side, side if square else side + 1)
    size = reduced_size(RESNET, recipe, shape)
    expected = max(8, round(side * scale))
    if share and square and expected < side:
        assert size == expected
    else:
        assert size is None
    assert reduced_size(FIXED, recipe, shape) is None  # seed-cnn's dense head takes one size only
    assert reduced_size(RESNET, recipe, None) is None  # text


def test_the_default_scales_28_pixels_to_24() -> None:
    assert reduced_size(RESNET, TrainConfig(), (1, 28, 28)) == 24
    with pytest.raises(ValueError):
        TrainConfig(resize_share=1.0)  # some steps must train at full size


@settings(max_examples=30, deadline=None)
@given(images=arrays(np.uint8, (3, 2, 12, 12)), size=st.integers(8, 11), channels_last=st.booleans())
def test_resized_images_stay_within_the_range_and_layout_of_the_originals(
    images: np.ndarray, size: int, channels_last: bool
) -> None:
    x = torch.from_numpy(images).float() / 255
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = resized(x, size)
    assert out.shape == (3, 2, size, size)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    # antialiased bilinear weights are non-negative and sum to one (up to rounding)
    assert float(out.min()) >= float(x.min()) - 1e-5 and float(out.max()) <= float(x.max()) + 1e-5
    assert resized(x, None) is x and resized(x, 12) is x


def _sizes_seen(data: PreparedDataset, recipe: TrainConfig, model: str) -> tuple[list[int], list[int]]:
    """The image side of every training and every validation forward of a fit."""
    net = create_model(model, 1, data.num_classes, 20, width=8)
    train_sizes: list[int] = []
    eval_sizes: list[int] = []
    net.register_forward_pre_hook(
        lambda module, args: (train_sizes if module.training else eval_sizes).append(args[0].shape[-1])
    )
    fit_model(net, data, recipe)
    return train_sizes, eval_sizes


def test_the_first_share_of_the_steps_trains_small_and_the_rest_and_validation_at_full_size(
    blob_data: PreparedDataset,
) -> None:
    recipe = TrainConfig(model="resnet-s", width=8, epochs=4, batch_size=16, threads=2, ema_decay=0.0)
    recipe = recipe.model_copy(update={"resize_share": 0.25, "resize_scale": 0.5})
    train_sizes, eval_sizes = _sizes_seen(blob_data, recipe, "resnet-s")
    steps = 4 * int(np.ceil(len(blob_data.splits["train"]) / 16))
    assert len(train_sizes) == steps
    small = int(np.ceil(0.25 * steps))
    assert train_sizes == [10] * small + [20] * (steps - small)
    assert set(eval_sizes) == {20}


def test_off_or_a_fixed_size_model_trains_at_full_size_throughout(blob_data: PreparedDataset) -> None:
    recipe = TrainConfig(model="resnet-s", width=8, epochs=2, batch_size=32, threads=2)
    off, _ = _sizes_seen(blob_data, recipe.model_copy(update={"resize_share": 0.0}), "resnet-s")
    fixed, _ = _sizes_seen(blob_data, recipe.model_copy(update={"model": "seed-cnn"}), "seed-cnn")
    assert set(off) == {20} and set(fixed) == {20}


def test_fine_tunes_and_students_train_at_full_size() -> None:
    from dcloop.optimize._candidates import train_recipe

    run_config = TrainConfig(resize_share=0.6).model_dump()
    assert train_recipe(run_config, epochs=3).resize_share == 0.0
    assert train_recipe(run_config, model="tiny-cnn").resize_share == 0.0
