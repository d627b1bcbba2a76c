"""Inverse questions: how many accelerators finish a run in N days; how large a model a cluster can train.

The largest compute-optimal model follows Hoffmann et al. 2022 (Chinchilla): train on about 20 tokens
per parameter, so compute C = 6·N·D = 6·k·N² and N = sqrt(C / (6·k)) for k tokens per parameter.
Target days are whole-run wall time: only the goodput share of them trains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dcloop.errors import ConfigError
from dcloop.plan._catalog import Accelerator, get_accelerator
from dcloop.plan._energy import Site, SiteInputs, check_site, cost_covers, energy_cost
from dcloop.plan._layout import fit_hint
from dcloop.plan._memory import STATE_BYTES
from dcloop.plan._training import DEFAULT_GOODPUT, DEFAULT_MFU, TrainingPlan, TrainingSpec, plan_training

CHINCHILLA_TOKENS_PER_PARAM = 20.0


@dataclass(frozen=True)
class ComputeOptimal:
    """The largest model a cluster trains compute-optimally in ``days``."""

    accelerator: str
    count: int
    days: float
    utilization: float
    goodput: float
    tokens_per_param: float
    compute_flops: float
    params: float
    tokens: float
    states_per_accelerator_gb: float
    accelerator_hours: float
    power_w: float
    it_kwh: float
    facility_kwh: float
    co2_kg: float
    cost_usd: float
    cost_covers: str

    def summary(self) -> dict[str, Any]:
        """The figures in the units `dcloop plan train` uses (MWh, t)."""
        data = dict(self.__dict__)
        for kwh, mwh in (("it_kwh", "energy_it_mwh"), ("facility_kwh", "energy_facility_mwh")):
            data[mwh] = data.pop(kwh) / 1000
        data["co2_t"] = data.pop("co2_kg") / 1000
        cost = data.pop("cost_usd")
        data.update(cost_usd=cost, cost_covers=self.cost_covers)
        return data


def accelerators_for_days(
    spec: TrainingSpec, days: float, catalog: Mapping[str, Accelerator] | None = None
) -> TrainingPlan:
    """The smallest count (a multiple of tp x pp, and enough memory) that trains ``spec`` in ``days``."""
    if spec.count is not None:
        raise ConfigError(
            f"A target of {days:g} days and a fixed count of {spec.count} contradict each other: drop "
            f"--count to size the cluster, or use `dcloop plan train --count {spec.count}` for the time."
        )
    if spec.wall_days is not None or spec.accelerator_hours is not None:
        raise ConfigError(
            "A target time cannot be combined with --wall-days or --accelerator-hours of a finished run."
        )
    if not days > 0:
        raise ConfigError(f"`days` must be positive. Got {days:g}.")
    smallest = plan_training(spec, catalog)
    accelerator_seconds = smallest.count * smallest.wall_s
    group = smallest.memory.tp * smallest.memory.pp
    needed = math.ceil(accelerator_seconds / (days * 86400) / group - 1e-9) * group
    count = max(needed, smallest.count)
    layout = smallest.memory
    pinned = replace(
        spec,
        count=count,
        tp=layout.tp,
        pp=layout.pp,
        zero_stage=layout.zero_stage,
        recompute=layout.recompute,
    )
    plan = plan_training(pinned, catalog)
    if plan.memory.fits or smallest.min_accelerators is not None:
        return plan
    # the layout was pinned here, not by the user: the hint names what the user can still change
    return replace(plan, fit_hint=fit_hint(spec.model, plan.memory, None, spec, plan.accelerator.name))


def largest_compute_optimal_model(
    accelerator: str,
    count: int,
    days: float,
    utilization: float = DEFAULT_MFU,
    precision: str = "bf16",
    tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM,
    catalog: Mapping[str, Accelerator] | None = None,
    site: SiteInputs | None = None,
    goodput: float = DEFAULT_GOODPUT,
) -> ComputeOptimal:
    """Parameters N and tokens D = k·N that use ``count`` accelerators for ``days`` at ``utilization``
    (``goodput`` of the days training), and what those accelerator-hours cost at ``site`` (default:
    catalog TDP and the energy defaults of dcloop.yaml's `energy` section)."""
    if count < 1:
        raise ConfigError(f"`count` must be a positive integer. Got {count}.")
    if not days > 0:
        raise ConfigError(f"`days` must be positive. Got {days:g}.")
    if not 0 < utilization <= 1:
        hint = f" Did you mean {utilization / 100:g}?" if 1 < utilization <= 100 else ""
        raise ConfigError(f"`utilization` must be in (0, 1]. Got {utilization:g}.{hint}")
    if not 0 < goodput <= 1:
        raise ConfigError(f"`goodput` must be in (0, 1]. Got {goodput:g}.")
    if not tokens_per_param > 0:
        raise ConfigError(f"`tokens_per_param` must be positive. Got {tokens_per_param:g}.")
    site = site or Site()
    check_site(site)
    chip = get_accelerator(accelerator, catalog)
    compute = count * chip.peak_flops(precision) * utilization * goodput * days * 86400
    params = math.sqrt(compute / (6 * tokens_per_param))
    state_bytes = sum(STATE_BYTES.get(precision, STATE_BYTES["bf16"]))
    hours = count * days * 24
    power = chip.power_w(site.power_w)
    cost = energy_cost(site, hours, power)
    return ComputeOptimal(
        accelerator=chip.name,
        count=count,
        days=days,
        utilization=utilization,
        goodput=goodput,
        tokens_per_param=tokens_per_param,
        compute_flops=compute,
        params=params,
        tokens=tokens_per_param * params,
        states_per_accelerator_gb=params * state_bytes / count / 1e9,
        accelerator_hours=hours,
        power_w=power,
        it_kwh=cost.it_kwh,
        facility_kwh=cost.facility_kwh,
        co2_kg=cost.co2_kg,
        cost_usd=cost.cost_usd,
        cost_covers=cost_covers(site),
    )
