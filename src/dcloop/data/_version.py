"""A prepared data set version as training and evaluation see it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcloop.store import DatasetRecord

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PreparedDataset:
    """Images ``x`` uint8 (N, C, H, W) (memory-mapped when loaded from disk), labels ``y`` int64 (N,),
    and disjoint index arrays per split ("train", "val", "test")."""

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
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of one split, in stored order."""
        index = self.splits[split]
        return self.x[index], self.y[index]
