"""vit-tiny: a small vision transformer for the image contract, trained from scratch.

Non-overlapping patches (a strided convolution) plus learned position embeddings, pre-norm
transformer blocks with ``scaled_dot_product_attention`` (fused on CPU and GPU, plain matmuls in
ONNX), mean pooling over patches and a linear head. Border pixels beyond the last whole patch are
dropped (28x28 with patch 4 uses all of them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dcloop.errors import ConfigError
from dcloop.train._zoo import Normalize, register_model


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.dropout(self.proj(attended))
        return x + self.dropout(self.mlp(self.norm2(x)))


class ViT(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        patch: int,
        width: int,
        depth: int,
        heads: int,
        dropout: float,
        mean: float,
        std: float,
    ) -> None:
        super().__init__()
        if image_size < patch:
            raise ConfigError(
                f"vit-tiny needs images of at least its patch size ({patch}). Got {image_size}."
            )
        if width % heads:
            raise ConfigError(f"vit-tiny `width` ({width}) must be divisible by its heads ({heads}).")
        self.normalize = Normalize(mean, std)
        self.patches = nn.Conv2d(in_channels, width, patch, stride=patch)
        self.position = nn.Parameter(torch.randn(1, (image_size // patch) ** 2, width) * 0.02)
        self.blocks = nn.Sequential(*(_Block(width, heads, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(self.normalize(x)).flatten(2).transpose(1, 2) + self.position
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


@register_model("vit-tiny", "Vision transformer from scratch: 4x4 patches, 4 blocks of width w*4 (w=16: 64).")
def vit_tiny(
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 16,
    patch: int = 4,
    depth: int = 4,
    dropout: float = 0.0,
    mean: float = 0.5,
    std: float = 0.5,
    **_: Any,
) -> nn.Module:
    # `width` is the zoo's base channel width (CNN stages w-2w-4w); the token width is 4w
    dim = 4 * width
    return ViT(in_channels, num_classes, image_size, patch, dim, depth, max(1, dim // 32), dropout, mean, std)
