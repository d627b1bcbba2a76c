"""What-if tables: the same training run on each accelerator type and count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dcloop.errors import ConfigError
from dcloop.plan._catalog import Accelerator
from dcloop.plan._training import TrainingSpec, plan_training


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


OWN_COUNT_FACTORS = (1, 2, 4, 8)


def what_if(
    spec: TrainingSpec,
    accelerators: Sequence[str],
    counts: Sequence[int] | None = None,
    catalog: Mapping[str, Accelerator] | None = None,
) -> list[WhatIfRow]:
    """One row per (accelerator, count); a cell that cannot run says why in ``note``.

    ``counts`` None: each accelerator at the fewest that fit it (or its planned count when nothing
    fits), times ``OWN_COUNT_FACTORS``.
    """
    rows = []
    for name in accelerators:
        for count in counts if counts is not None else _own_counts(spec, name, catalog):
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
                    note="" if plan.memory.fits else _why(plan.min_accelerators),
                )
            )
    return rows


def _own_counts(spec: TrainingSpec, name: str, catalog: Mapping[str, Accelerator] | None) -> list[int]:
    try:
        base = plan_training(replace(spec, accelerator=name, count=None), catalog).count
    except ConfigError:
        return [spec.count or 1]  # the row then carries the error in its note
    return [base * f for f in OWN_COUNT_FACTORS]


def _why(min_accelerators: int | None) -> str:
    if min_accelerators is None:
        return "does not fit at any count"
    return f"needs at least {min_accelerators} to fit"
