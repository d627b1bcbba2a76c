"""Plan serving of an image model from its measured throughput (images/s per accelerator).

dcloop's own image classifiers are benchmarked, not derived from FLOPs: give the images/s one
accelerator (or CPU host) sustains and the planner sizes the fleet for a request rate, keeping each
accelerator at most ``max_load`` busy so queues stay short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcloop.config import ENERGY_DEFAULTS
from dcloop.errors import ConfigError
from dcloop.plan._catalog import Accelerator, get_accelerator
from dcloop.plan._energy import check_site, cost_covers, energy_cost


@dataclass(frozen=True)
class ImageServingSpec:
    """Measured ``images_per_s`` per accelerator; ``accelerator`` None means a host charged at ``power_w``."""

    images_per_s: float
    target_rps: float
    accelerator: str | None = None
    max_load: float = 0.8
    power_w: float | None = None
    pue: float = ENERGY_DEFAULTS.pue
    carbon_kg_per_kwh: float = ENERGY_DEFAULTS.carbon_kg_per_kwh
    price_per_kwh: float = ENERGY_DEFAULTS.price_per_kwh
    accelerator_hour_usd: float = 0.0


@dataclass(frozen=True)
class ImageServingPlan:
    spec: ImageServingSpec
    accelerators: int
    load: float
    power_w: float
    energy_kwh_per_million_images: float
    co2_kg_per_million_images: float
    cost_usd_per_million_images: float

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "spec"}
        spec = self.spec
        return {
            "accelerator": spec.accelerator or "host",
            "images_per_s": spec.images_per_s,
            "target_rps": spec.target_rps,
            **data,
            "cost_covers": cost_covers(spec),
        }


def plan_image_serving(
    spec: ImageServingSpec, catalog: Mapping[str, Accelerator] | None = None
) -> ImageServingPlan:
    """Accelerators for ``target_rps`` images/s, and energy, CO2 and cost per million images served."""
    _check(spec)
    if spec.accelerator is not None:
        power = get_accelerator(spec.accelerator, catalog).power_w(spec.power_w)
    elif spec.power_w is not None:
        power = spec.power_w
    else:
        raise ConfigError("Give --accelerator (its catalog TDP is charged) or --power-w for a host.")
    count = max(1, math.ceil(spec.target_rps / (spec.images_per_s * spec.max_load) - 1e-9))
    million_per_hour = spec.target_rps * 3600 / 1e6
    hourly = energy_cost(spec, count, power)  # one hour of the fleet
    return ImageServingPlan(
        spec=spec,
        accelerators=count,
        load=spec.target_rps / (count * spec.images_per_s),
        power_w=power,
        energy_kwh_per_million_images=hourly.facility_kwh / million_per_hour,
        co2_kg_per_million_images=hourly.co2_kg / million_per_hour,
        cost_usd_per_million_images=hourly.cost_usd / million_per_hour,
    )


def _check(spec: ImageServingSpec) -> None:
    for name in ("images_per_s", "target_rps"):
        value = getattr(spec, name)
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"`{name}` must be positive. Got {value:g}.")
    if not 0 < spec.max_load <= 1:
        raise ConfigError(f"`max_load` must be in (0, 1]. Got {spec.max_load:g}.")
    check_site(spec)
