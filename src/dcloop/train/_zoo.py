"""The zoo's registry: where every entry registers itself, with its modality.

Kept apart from the entries and from ``create_model`` (``_models``), so modules that add entries
(``_text_models``, ``_vit``) import this and ``_models`` imports them, without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dcloop.registry import Registry

ModelBuilder = Callable[..., nn.Module]
_models: Registry[ModelBuilder] = Registry("model")
_descriptions: dict[str, str] = {}
_modalities: dict[str, str] = {}


def register_model(
    name: str, description: str, modality: str = "image"
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Add a builder to the zoo under ``name``, for inputs of ``modality`` ("image" or "text")."""
    _descriptions[name] = description
    _modalities[name] = modality
    return _models.register(name)


class Normalize(nn.Module):
    """(x - mean) / std with fixed buffers, so preprocessing travels with the weights."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
