"""What-if tables: the same training run on each accelerator type and count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dcloop.errors import ConfigError
from dcloop.plan.catalog import Accelerator
from dcloop.plan.training import TrainingSpec, plan_training


@dataclass(frozen=True)
class WhatIfRow:
    accelerator: str
    count: int
    wall_days: float | None
    accelerator_hours: float | None
    energy_facility_mwh: float | None
    co2_t: float | None
    cost_usd: float | None
    memory_gb: float | None
    fits: bool
    note: str = ""

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


def what_if(
    spec: TrainingSpec,
    accelerators: Sequence[str],
    counts: Sequence[int],
    catalog: Mapping[str, Accelerator] | None = None,
) -> list[WhatIfRow]:
    """One row per (accelerator, count); a cell that cannot run says why in ``note``."""
    rows = []
    for name in accelerators:
        for count in counts:
            try:
                plan = plan_training(replace(spec, accelerator=name, count=count), catalog)
            except ConfigError as exc:
                rows.append(WhatIfRow(name, count, None, None, None, None, None, None, False, str(exc)))
                continue
            rows.append(
                WhatIfRow(
                    accelerator=plan.accelerator.name,
                    count=count,
                    wall_days=plan.wall_s / 86400,
                    accelerator_hours=plan.accelerator_hours,
                    energy_facility_mwh=plan.energy_facility_kwh / 1000,
                    co2_t=plan.co2_kg / 1000,
                    cost_usd=plan.cost_usd,
                    memory_gb=plan.memory.total / 1e9,
                    fits=plan.memory.fits,
                    note="" if plan.memory.fits else f"needs at least {plan.min_accelerators} to fit",
                )
            )
    return rows
