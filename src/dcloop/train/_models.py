"""The model zoo: one contract per modality for every entry.

Image models take float32 images in [0, 1] shaped (N, C, H, W) and return logits (N, num_classes).
Input normalisation lives inside the model (a fixed buffer), so an exported ONNX file is
self-contained. Image builders take ``in_channels, num_classes, image_size`` plus their own keywords.
Text models (``_text_models``) take ``input_ids`` and ``attention_mask`` (int64, (N, T)) and return
logits; their builders take ``num_classes`` plus their own keywords.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dcloop.train import _text_models, _vit  # noqa: F401  (their entries register on import)
from dcloop.train._zoo import ModelBuilder, Normalize, _descriptions, _modalities, _models, register_model


def create_model(
    name: str,
    in_channels: int | None = None,
    num_classes: int = 2,
    image_size: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a zoo model by name (unknown names get a close-match suggestion). Image models need
    ``in_channels`` and ``image_size``; text models take ``num_classes`` and their own keywords."""
    builder = _models.get(name)
    if _modalities[name] == "text":
        return builder(num_classes=num_classes, **kwargs)
    return builder(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **kwargs)


def list_models(modality: str | None = None) -> dict[str, str]:
    """Zoo names and one-line descriptions (of one modality's entries when given)."""
    names = _models.names()
    return {n: _descriptions[n] for n in names if modality is None or _modalities[n] == modality}


def model_modality(name: str) -> str:
    """The modality a zoo entry takes ("image" or "text")."""
    _models.get(name)
    return _modalities[name]


def _flat_features(body: nn.Module, in_channels: int, image_size: int) -> int:
    with torch.no_grad():
        return int(body(torch.zeros(1, in_channels, image_size, image_size)).numel())


@register_model("seed-cnn", "Reference Keras design: 3 conv (32-64-64, 3x3), 2 maxpool, dense 64.")
def seed_cnn(
    in_channels: int, num_classes: int, image_size: int, mean: float = 0.5, std: float = 0.5, **_: Any
) -> nn.Module:
    body = nn.Sequential(
        Normalize(mean, std),
        nn.Conv2d(in_channels, 32, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(inplace=True),
        nn.Flatten(),
    )
    features = _flat_features(body, in_channels, image_size)
    return nn.Sequential(*body, nn.Linear(features, 64), nn.ReLU(inplace=True), nn.Linear(64, num_classes))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet for low-resolution images: 3x3 stem, stages at widths w, 2w, 4w."""

    any_input_size = True  # global pooling: progressive resizing may train it on smaller images

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int,
        blocks: tuple[int, ...],
        mean: float,
        std: float,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        cin = width
        for stage, count in enumerate(blocks):
            cout = width * 2**stage
            for index in range(count):
                layers.append(BasicBlock(cin, cout, stride=2 if stage > 0 and index == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(self.normalize(x)))
        return self.head(self.dropout(torch.flatten(self.pool(x), 1)))


def _resnet(blocks: tuple[int, ...]) -> ModelBuilder:
    """A ResNet builder with ``blocks`` residual blocks per stage."""

    def build(
        in_channels: int,
        num_classes: int,
        image_size: int,
        width: int = 32,
        mean: float = 0.5,
        std: float = 0.5,
        dropout: float = 0.0,
        **_: Any,
    ) -> nn.Module:
        return ResNet(in_channels, num_classes, width, blocks, mean, std, dropout)

    return build


resnet_s = register_model(
    "resnet-s", "Small ResNet with batch norm (3 stages x 1 block, width w-2w-4w): the default."
)(_resnet((1, 1, 1)))
resnet_m = register_model(
    "resnet-m", "ResNet with batch norm (3 stages x 2 blocks, width w-2w-4w): more capacity."
)(_resnet((2, 2, 2)))


@register_model("tiny-cnn", "Two conv layers and a linear head: a fast model for tests and distillation.")
def tiny_cnn(
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 8,
    mean: float = 0.5,
    std: float = 0.5,
    **_: Any,
) -> nn.Module:
    return nn.Sequential(
        Normalize(mean, std),
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


def describe_models(in_channels: int = 1, num_classes: int = 2, image_size: int = 28) -> list[dict[str, Any]]:
    """Every zoo entry with its modality, description and parameter count (image entries at the given
    input shape, text entries at their default vocabulary)."""
    rows = []
    for name, description in list_models().items():
        model = create_model(name, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
        params = sum(p.numel() for p in model.parameters())
        rows.append(
            {"name": name, "modality": _modalities[name], "description": description, "params": params}
        )
    return rows
