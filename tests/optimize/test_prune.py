"""Structured pruning really removes channels: fewer parameters and FLOPs, same outputs shape, exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcloop.optimize import check_parity, export_onnx
from dcloop.optimize._prune import count_macs_params, prune_channels
from dcloop.train._models import create_model


@pytest.mark.parametrize(("name", "keep"), [("resnet-s", 0.5), ("seed-cnn", 0.5), ("tiny-cnn", 0.3)])
def test_pruned_model_is_smaller_and_still_exports(name: str, keep: float, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, 1, 2, 28, width=16)
    macs, params = count_macs_params(model, (1, 28, 28))
    pruned = prune_channels(model, (1, 28, 28), keep)
    assert pruned.macs_before == macs and pruned.macs_after <= keep * macs
    assert pruned.params_after < params
    assert count_macs_params(pruned.model, (1, 28, 28)) == (pruned.macs_after, pruned.params_after)
    assert count_macs_params(model, (1, 28, 28)) == (macs, params)  # the original is untouched
    convs = [m for m in pruned.model.modules() if isinstance(m, torch.nn.Conv2d)]
    originals = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(c.out_channels for c in convs) < sum(c.out_channels for c in originals)
    path = export_onnx(pruned.model, tmp_path / "pruned.onnx", (1, 28, 28))
    x = np.random.default_rng(0).integers(0, 256, size=(16, 1, 28, 28), dtype=np.uint8)
    assert check_parity(pruned.model, path, x) <= 1e-4
    assert all(p.requires_grad for p in pruned.model.parameters())  # ready to fine-tune


def test_round_to_keeps_channel_multiples_and_falls_back_on_tiny_models() -> None:
    torch.manual_seed(0)
    pruned = prune_channels(create_model("resnet-s", 1, 2, 28), (1, 28, 28), 0.5, round_to=8)
    assert pruned.flops_ratio <= 0.5
    assert all(c.out_channels % 8 == 0 for c in pruned.model.modules() if isinstance(c, torch.nn.Conv2d))
    tiny = prune_channels(create_model("tiny-cnn", 1, 2, 28), (1, 28, 28), 0.5, round_to=8)  # 8/16 channels
    assert tiny.flops_ratio <= 0.5
