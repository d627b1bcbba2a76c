"""Channels-last training keeps the convolutions oneDNN mishandles in that layout contiguous."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcloop.config import TrainConfig
from dcloop.train._layout import needs_contiguous, to_channels_last
from dcloop.train._loop import fit_model
from dcloop.train._models import create_model


@pytest.mark.parametrize(
    ("conv", "expected"),
    [
        (nn.Conv2d(8, 16, 1, 2, bias=False), True),  # resnet-s width 8 shortcut
        (nn.Conv2d(24, 32, 1, 2, bias=False), True),  # a shortcut pruned to multiples of 8
        (nn.Conv2d(4, 8, 1, (1, 2)), True),
        (nn.Conv2d(32, 64, 1, 2, bias=False), False),  # whole SIMD blocks: the default width
        (nn.Conv2d(8, 16, 1, 1), False),  # unit stride takes another kernel
        (nn.Conv2d(8, 16, 3, 2, 1), False),  # so does a 3x3
        (nn.Conv2d(32, 32, 1, 2, groups=4), True),  # 8 input channels per group
        (nn.Linear(8, 16), False),
    ],
)
def test_needs_contiguous_picks_pointwise_strided_partial_block_convs(
    conv: nn.Module, expected: bool
) -> None:
    assert needs_contiguous(conv) is expected


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_exempt_layout_gives_the_contiguous_gradients() -> None:
    torch.manual_seed(0)
    model = create_model("resnet-s", 1, 2, 28, width=8)
    x, y = torch.rand(25, 1, 28, 28), torch.randint(0, 2, (25,))
    reference = _grads(model, x, y)
    restore = to_channels_last(model, torch.device("cpu"))
    shortcut = model.stages[1].shortcut[0]
    assert shortcut.weight.is_contiguous()
    assert model.stages[1].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(3):  # the unguarded kernel corrupts the heap within a few steps
        fast = _grads(model, x.contiguous(memory_format=torch.channels_last), y)
    restore()
    assert not shortcut._forward_pre_hooks
    assert fast.keys() == reference.keys()
    for name, grad in reference.items():
        torch.testing.assert_close(fast[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_fit_trains_width_8_resnet_channels_last_with_odd_batches(blob_data) -> None:
    # 144 train images in batches of 25: five odd batches of 25 and a last one of 19
    recipe = TrainConfig(model="resnet-s", width=8, epochs=1, batch_size=25, threads=2, precision="fp32")
    model = create_model("resnet-s", 1, 2, 20, width=8)
    result = fit_model(model, blob_data, recipe)
    assert all(not m._forward_pre_hooks for m in result.model.modules())
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert len(result.history) == 1
