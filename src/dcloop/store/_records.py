"""Frozen records the store returns. Mutating a record never changes the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DatasetRecord:
    """A prepared, immutable data set version."""

    id: str
    name: str
    created_at: datetime
    path: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    shape: list[int]
    source: dict[str, Any]
    cleaning: dict[str, Any]
    parent_id: str | None = None
    modality: str = "image"  # "image" (shape [C, H, W]) or "text" (shape [])

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class RunRecord:
    """A training (or trial, distillation, fine-tune) run and its lineage."""

    id: str
    kind: str
    name: str
    dataset_id: str
    model: str
    status: str
    created_at: datetime
    config: dict[str, Any]
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    path: str
    finished_at: datetime | None = None
    parent_run_id: str | None = None


@dataclass(frozen=True)
class EpochRecord:
    run_id: str
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
