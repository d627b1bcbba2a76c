"""vit-tiny under the image contract: patches cover what they can, sizes are checked, it learns."""

from __future__ import annotations

import pytest
import torch

from dcloop.config import TrainConfig
from dcloop.data import PreparedDataset
from dcloop.errors import ConfigError
from dcloop.train import create_model, fit_model


@pytest.mark.parametrize(("size", "patches"), [(28, 49), (20, 25), (30, 49)])
def test_patch_grid_follows_the_image_size(size: int, patches: int) -> None:
    model = create_model("vit-tiny", 1, 3, size)
    assert model.position.shape == (1, patches, 64)
    assert model(torch.rand(2, 1, size, size)).shape == (2, 3)


def test_too_small_images_and_odd_widths_are_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"vit-tiny needs images of at least its patch size \(4\)\. Got 3\."
    ):
        create_model("vit-tiny", 1, 2, 3)
    with pytest.raises(ConfigError, match=r"vit-tiny `width` \(100\) must be divisible by its heads"):
        create_model("vit-tiny", 1, 2, 28, width=25)


@pytest.mark.slow
def test_vit_tiny_learns_the_bars(blob_data: PreparedDataset) -> None:
    recipe = TrainConfig(
        model="vit-tiny", epochs=4, batch_size=32, lr=3e-3, threads=2, width=8, ema_decay=0.0
    )
    recipe.augment.enabled = False
    torch.manual_seed(0)
    result = fit_model(create_model("vit-tiny", 1, 2, 20, width=8), blob_data, recipe)
    assert result.history[-1]["val_accuracy"] >= 0.9
