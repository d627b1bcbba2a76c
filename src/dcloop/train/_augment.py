"""Batched training augmentation with kornia, on the training device.

Names follow Keras ImageDataGenerator (rotation, shifts, shear, zoom, horizontal flip, fill mode) so
the reference recipe translates one to one. Randomness comes from torch's global generator, which
training seeds and checkpoints, so augmented runs are reproducible and resumable.
"""

from __future__ import annotations

import math

from torch import nn

# Keras fill_mode -> grid_sample padding mode.
PADDING = {"nearest": "border", "constant": "zeros", "reflect": "reflection"}


def build_augment(
    *,
    rotation: float,
    width_shift: float,
    height_shift: float,
    shear: float,
    zoom: float,
    hflip: bool,
    fill_mode: str,
) -> nn.Module:
    """A module mapping a float batch (N, C, H, W) to an augmented batch of the same shape."""
    import kornia.augmentation as K

    steps: list[nn.Module] = []
    if rotation or width_shift or height_shift or shear or zoom:
        shear_degrees = math.degrees(shear)  # Keras gives shear in radians, kornia in degrees
        steps.append(
            K.RandomAffine(
                degrees=rotation,
                translate=(width_shift, height_shift) if width_shift or height_shift else None,
                scale=(1.0 - zoom, 1.0 + zoom) if zoom else None,
                shear=shear_degrees if shear else None,
                padding_mode=PADDING[fill_mode],
                p=1.0,
            )
        )
    if hflip:
        steps.append(K.RandomHorizontalFlip(p=0.5))
    return nn.Sequential(*steps)
