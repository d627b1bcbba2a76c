"""Energy, CO2 and money of accelerator-hours: the arithmetic every plan shares.

IT energy is accelerator-hours times the power per accelerator; the facility draws PUE times that,
and CO2 and the electricity bill follow the facility energy. Rental is charged per accelerator-hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dcloop.config import ENERGY_DEFAULTS
from dcloop.errors import ConfigError


class SiteInputs(Protocol):
    """The energy and money fields every plan spec carries (same names as the flags)."""

    @property
    def power_w(self) -> float | None: ...
    @property
    def pue(self) -> float: ...
    @property
    def carbon_kg_per_kwh(self) -> float: ...
    @property
    def price_per_kwh(self) -> float: ...
    @property
    def accelerator_hour_usd(self) -> float: ...


@dataclass(frozen=True)
class Site:
    """Site inputs on their own, for a plan that has no spec to carry them."""

    power_w: float | None = None
    pue: float = ENERGY_DEFAULTS.pue
    carbon_kg_per_kwh: float = ENERGY_DEFAULTS.carbon_kg_per_kwh
    price_per_kwh: float = ENERGY_DEFAULTS.price_per_kwh
    accelerator_hour_usd: float = 0.0


@dataclass(frozen=True)
class EnergyCost:
    """What ``accelerator_hours`` at ``power_w`` each cost in energy, CO2 and money."""

    it_kwh: float
    facility_kwh: float
    co2_kg: float
    cost_energy_usd: float
    cost_compute_usd: float

    @property
    def cost_usd(self) -> float:
        return self.cost_energy_usd + self.cost_compute_usd


def energy_cost(site: SiteInputs, accelerator_hours: float, power_w: float) -> EnergyCost:
    """Energy, CO2 and cost of ``accelerator_hours`` drawing ``power_w`` each at ``site``."""
    it_kwh = accelerator_hours * power_w / 1000
    facility_kwh = it_kwh * site.pue
    return EnergyCost(
        it_kwh=it_kwh,
        facility_kwh=facility_kwh,
        co2_kg=facility_kwh * site.carbon_kg_per_kwh,
        cost_energy_usd=facility_kwh * site.price_per_kwh,
        cost_compute_usd=accelerator_hours * site.accelerator_hour_usd,
    )


def cost_covers(site: SiteInputs) -> str:
    """What a cost figure includes, in words: electricity only, or a rental plus electricity."""
    power = f"electricity at ${site.price_per_kwh:g}/kWh x PUE"
    if not site.accelerator_hour_usd:
        return f"{power} only (no accelerator-hour price: hardware not charged)"
    return (
        f"rental at ${site.accelerator_hour_usd:g}/accelerator-hour + {power} "
        "(give --price 0 when the rental includes power)"
    )


def check_site(site: SiteInputs) -> None:
    """Raise ConfigError on a non-positive power, a PUE below 1 or a negative price or intensity."""
    if site.power_w is not None and not site.power_w > 0:
        raise ConfigError(f"`power_w` must be positive. Got {site.power_w:g}.")
    if not site.pue >= 1:
        raise ConfigError(f"`pue` must be at least 1 (facility energy over IT energy). Got {site.pue:g}.")
    for name in ("carbon_kg_per_kwh", "price_per_kwh", "accelerator_hour_usd"):
        value = getattr(site, name)
        if not value >= 0:
            raise ConfigError(f"`{name}` must be zero or positive. Got {value:g}.")
