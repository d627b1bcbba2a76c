"""Test-time views (``train.tta``): an image model that answers with the mean logits of several views
of each image, the way it learned to see them under augmentation.

``flip`` averages each image with its mirror image (2 views); ``flip-shift`` also with both moved one
pixel up, down, left and right (10 views; pixels shifted in repeat the edge, as the augmentation's
default ``fill_mode: nearest`` does). The views are part of the model's graph, so the test metrics,
the ONNX export, the gate and the server all see the same answers; inference costs that many times
more. In training mode the model sees its input alone: training, and validation within it, are
unchanged. The weights are the plain model's: ``model.safetensors`` keeps them, and ``model.json``
names the views.
"""

from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn

from dcloop.config import TrainConfig

VIEWS: tuple[str, ...] = get_args(TrainConfig.model_fields["tta"].annotation)  # "none" first
SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (rows, columns): the image, then one pixel each way


class ViewAverage(nn.Module):
    """``model`` answering with the mean logits over ``views`` in eval mode; itself in training mode."""

    def __init__(self, model: nn.Module, views: str) -> None:
        super().__init__()
        if views not in VIEWS[1:]:
            raise ValueError(f"views must be one of {', '.join(VIEWS[1:])}, not {views!r}")
        self.model, self.views = model, views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.model(x)
        shifted = [x] if self.views == "flip" else [_shift(x, dy, dx) for dy, dx in SHIFTS]
        views = shifted + [view.flip(-1) for view in shifted]
        logits = self.model(torch.cat(views))  # one batch: one pass through the model
        # slices along the batch, not a reshape, so an exported graph keeps its static class count
        n = x.shape[0]
        total = logits[:n]
        for i in range(1, len(views)):
            total = total + logits[i * n : (i + 1) * n]
        return total / len(views)

    def extra_repr(self) -> str:
        return f"views={self.views!r}"


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (N, C, H, W) moved ``dy`` rows down and ``dx`` columns right, edges repeated."""
    if dy == 0 and dx == 0:
        return x
    height, width = x.shape[-2], x.shape[-1]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return padded[:, :, 1 - dy : 1 - dy + height, 1 - dx : 1 - dx + width]


def with_views(model: nn.Module, views: str | None) -> nn.Module:
    """``model`` answering with the mean over ``views`` ("none" or None: ``model`` itself)."""
    return model if views in (None, "none") else ViewAverage(model, views)


def without_views(model: nn.Module) -> tuple[nn.Module, str]:
    """The plain model inside ``model`` and the views it was wrapped with ("none" when it was not)."""
    if isinstance(model, ViewAverage):
        return model.model, model.views
    return model, "none"
