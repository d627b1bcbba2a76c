"""Batched kornia augmentation: shape-preserving, seeded, Keras fill modes, nothing when all off."""

from __future__ import annotations

import pytest
import torch

from dcloop.train._augment import PADDING, build_augment

FULL = {"rotation": 40.0, "width_shift": 0.2, "height_shift": 0.2, "shear": 0.2, "zoom": 0.2, "hflip": True}


@pytest.mark.parametrize("fill_mode", sorted(PADDING))
def test_shape_range_and_seeded(fill_mode: str) -> None:
    augment = build_augment(**FULL, fill_mode=fill_mode)
    x = torch.rand(16, 1, 28, 28)
    torch.manual_seed(0)
    a = augment(x)
    torch.manual_seed(0)
    b = augment(x)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert a.min() >= 0.0 and a.max() <= 1.0 + 1e-6
    affine = augment[0]
    assert affine.flags["padding_mode"].name.lower() == PADDING[fill_mode]


def test_flip_only_flips_and_nothing_is_identity() -> None:
    x = torch.rand(64, 1, 8, 8)
    out = build_augment(**{**dict.fromkeys(FULL, 0.0), "hflip": True}, fill_mode="nearest")(x)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)
    identity = build_augment(**{**dict.fromkeys(FULL, 0.0), "hflip": False}, fill_mode="nearest")
    assert torch.equal(identity(x), x)
