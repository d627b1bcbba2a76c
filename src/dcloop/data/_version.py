"""A prepared data set version as training and evaluation see it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcloop.errors import DataError
from dcloop.store import DatasetRecord

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PreparedDataset:
    """Examples ``x``, labels ``y`` int64 (N,) and disjoint index arrays per split ("train", "val",
    "test"). ``x`` is uint8 (N, C, H, W) for images (memory-mapped when loaded from disk) and a 1-D
    object array of ``str`` (N,) for text (tokens: :func:`dcloop.data.tokenize_dataset`)."""

    record: DatasetRecord
    x: np.ndarray
    y: np.ndarray
    splits: dict[str, np.ndarray]

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def classes(self) -> list[str]:
        return list(self.record.classes)

    @property
    def num_classes(self) -> int:
        return len(self.record.classes)

    @property
    def modality(self) -> str:
        """ "image" or "text"."""
        return self.record.modality

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of an image version."""
        if self.modality != "image":
            raise DataError(f"Data set version {self.record.short_id} holds {self.modality}, not images.")
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of one split, in stored order."""
        index = self.splits[split]
        return self.x[index], self.y[index]
