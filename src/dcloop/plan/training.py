"""Plan a training run: FLOPs, wall time, accelerator-hours, energy, cost, CO2 and memory.

Utilization is model FLOPs utilization (MFU, Chowdhery et al. 2022, appendix B): model FLOPs per
second over the dense peak. Hardware FLOPs add what activation recomputation does again, and their
ratio to the peak is the hardware FLOPs utilization (HFU) that Megatron-style throughput reports.
Instead of a utilization, give what a finished run measured: tokens/s or FLOP/s per accelerator, the
wall time (with the count), or the accelerator-hours; the planner derives the utilization from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcloop.config import ENERGY_DEFAULTS
from dcloop.errors import ConfigError
from dcloop.plan.catalog import Accelerator, get_accelerator
from dcloop.plan.energy import check_site, energy_cost
from dcloop.plan.memory import STATE_BYTES, MemoryBreakdown, choose_layout, training_memory
from dcloop.plan.models import ModelShape, attention_flops_per_token, train_flops_per_token

# Typical large-run MFU: Llama 3 reports 38-43% BF16 MFU on 8K-16K H100s (Dubey et al. 2024, Table 4);
# PaLM 540B reached 46.2% on TPU v4 (Chowdhery et al. 2022, Table 3).
DEFAULT_MFU = 0.40
RATE_INPUTS = (
    "utilization",
    "tokens_per_s",
    "model_flops_per_s",
    "hardware_flops_per_s",
    "wall_days",
    "accelerator_hours",
)


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a training plan depends on. Give at most one of RATE_INPUTS; else DEFAULT_MFU applies."""

    model: ModelShape
    tokens: float
    accelerator: str = "h100-sxm"
    count: int | None = None
    utilization: float | None = None
    tokens_per_s: float | None = None
    model_flops_per_s: float | None = None
    hardware_flops_per_s: float | None = None
    wall_days: float | None = None
    accelerator_hours: float | None = None
    default_utilization: float = DEFAULT_MFU
    precision: str = "bf16"
    recompute: str = "selective"
    zero_stage: int = 1
    tp: int | None = None  # None: the smallest tensor-parallel degree that fits (up to 8)
    pp: int | None = None  # None: the fewest pipeline stages that fit
    micro_batch: int = 1
    usable_memory_fraction: float = 0.9
    power_w: float | None = None
    pue: float = ENERGY_DEFAULTS.pue
    carbon_kg_per_kwh: float = ENERGY_DEFAULTS.carbon_kg_per_kwh
    price_per_kwh: float = ENERGY_DEFAULTS.price_per_kwh
    accelerator_hour_usd: float = 0.0


@dataclass(frozen=True)
class TrainingPlan:
    """The answer: every figure of the run, plus the spec and chip it came from."""

    spec: TrainingSpec
    accelerator: Accelerator
    count: int
    derived_from: str
    model_flops: float
    hardware_flops: float
    peak_flops_per_s: float
    mfu: float
    hfu: float
    tokens_per_s_per_accelerator: float
    wall_s: float
    accelerator_hours: float
    power_w: float
    energy_it_kwh: float
    energy_facility_kwh: float
    co2_kg: float
    cost_energy_usd: float
    cost_compute_usd: float
    memory: MemoryBreakdown
    min_accelerators: int

    @property
    def cost_usd(self) -> float:
        return self.cost_energy_usd + self.cost_compute_usd

    def summary(self) -> dict[str, Any]:
        """The figures as plain numbers (JSON-ready), in the units people quote."""
        return {
            "model": self.spec.model.name,
            "params": self.spec.model.params,
            "tokens": self.spec.tokens,
            "accelerator": self.accelerator.name,
            "count": self.count,
            "derived_from": self.derived_from,
            "model_flops": self.model_flops,
            "hardware_flops": self.hardware_flops,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "tokens_per_s_per_accelerator": self.tokens_per_s_per_accelerator,
            "wall_days": self.wall_s / 86400,
            "accelerator_hours": self.accelerator_hours,
            "power_w": self.power_w,
            "energy_it_mwh": self.energy_it_kwh / 1000,
            "energy_facility_mwh": self.energy_facility_kwh / 1000,
            "co2_t": self.co2_kg / 1000,
            "cost_energy_usd": self.cost_energy_usd,
            "cost_compute_usd": self.cost_compute_usd,
            "cost_usd": self.cost_usd,
            "layout": {
                "tp": self.memory.tp,
                "pp": self.memory.pp,
                "dp": self.memory.dp,
                "zero_stage": self.memory.zero_stage,
                "recompute": self.memory.recompute,
            },
            "memory_per_accelerator_gb": self.memory.as_gb(),
            "fits": self.memory.fits,
            "min_accelerators": self.min_accelerators,
        }


def plan_training(spec: TrainingSpec, catalog: Mapping[str, Accelerator] | None = None) -> TrainingPlan:
    """Plan ``spec`` on its accelerator; raises ConfigError on contradictory or impossible input."""
    _check(spec)
    chip = get_accelerator(spec.accelerator, catalog)
    peak = chip.peak_flops(spec.precision)
    per_token = train_flops_per_token(spec.model)
    model_flops = per_token * spec.tokens
    hardware_flops = hardware_flops_per_token(spec.model, spec.recompute) * spec.tokens
    capacity = chip.memory_gb * 1e9 * spec.usable_memory_fraction
    tp, pp, min_dp, min_count = choose_layout(
        spec.model,
        spec.precision,
        spec.zero_stage,
        spec.tp,
        spec.pp,
        spec.micro_batch,
        spec.recompute,
        capacity,
        spec.count,
    )
    group = tp * pp
    count = spec.count if spec.count is not None else group * min_dp
    if count % group:
        raise ConfigError(f"`count` ({count}) must be a multiple of tp x pp = {tp} x {pp} = {group}.")
    derived_from, wall_s = _wall_seconds(spec, count, peak, model_flops, hardware_flops, per_token)
    mfu = model_flops / (count * peak * wall_s)
    hours = count * wall_s / 3600
    power = chip.power_w(spec.power_w)
    energy = energy_cost(spec, hours, power)
    return TrainingPlan(
        spec=spec,
        accelerator=chip,
        count=count,
        derived_from=derived_from,
        model_flops=model_flops,
        hardware_flops=hardware_flops,
        peak_flops_per_s=peak,
        mfu=mfu,
        hfu=hardware_flops / (count * peak * wall_s),
        tokens_per_s_per_accelerator=spec.tokens / (count * wall_s),
        wall_s=wall_s,
        accelerator_hours=hours,
        power_w=power,
        energy_it_kwh=energy.it_kwh,
        energy_facility_kwh=energy.facility_kwh,
        co2_kg=energy.co2_kg,
        cost_energy_usd=energy.cost_energy_usd,
        cost_compute_usd=energy.cost_compute_usd,
        memory=training_memory(
            spec.model,
            spec.precision,
            spec.zero_stage,
            tp,
            pp,
            count // group,
            spec.micro_batch,
            spec.recompute,
            capacity,
        ),
        min_accelerators=min_count,
    )


def hardware_flops_per_token(model: ModelShape, recompute: str) -> float:
    """Model FLOPs plus recomputation: a second forward (full) or the attention scores again (selective)."""
    base = train_flops_per_token(model)
    if recompute == "full":
        return base + 2 * model.params + attention_flops_per_token(model, forward_and_backward=False)
    if recompute == "selective":
        return base + attention_flops_per_token(model, forward_and_backward=False)
    return base


def _wall_seconds(
    spec: TrainingSpec, count: int, peak: float, model_flops: float, hardware_flops: float, per_token: float
) -> tuple[str, float]:
    """Which input sets the pace, and the wall time it gives."""
    if spec.wall_days is not None:
        return "wall_days", spec.wall_days * 86400
    if spec.accelerator_hours is not None:
        return "accelerator_hours", spec.accelerator_hours * 3600 / count
    if spec.tokens_per_s is not None:
        return "tokens_per_s", spec.tokens / (count * spec.tokens_per_s)
    if spec.model_flops_per_s is not None:
        return "model_flops_per_s", model_flops / (count * spec.model_flops_per_s)
    if spec.hardware_flops_per_s is not None:
        return "hardware_flops_per_s", hardware_flops / (count * spec.hardware_flops_per_s)
    utilization = spec.utilization if spec.utilization is not None else spec.default_utilization
    source = "utilization" if spec.utilization is not None else "default_utilization"
    return source, model_flops / (count * peak * utilization)


def _check(spec: TrainingSpec) -> None:
    given = [name for name in RATE_INPUTS if getattr(spec, name) is not None]
    if len(given) > 1:
        values = ", ".join(f"{name}={getattr(spec, name):g}" for name in given)
        raise ConfigError(
            f"Give at most one of {', '.join(RATE_INPUTS)}: they contradict each other. Got {values}."
        )
    if spec.wall_days is not None and spec.count is None:
        raise ConfigError(
            "`wall_days` describes a finished run and needs its `count`; to size a cluster for a "
            "deadline use `dcloop plan fit --days`."
        )
    if not spec.tokens > 0:
        raise ConfigError(f"`tokens` must be positive. Got {spec.tokens:g}.")
    if not spec.model.params > 0:
        raise ConfigError(f"`params` must be positive. Got {spec.model.params:g}.")
    if spec.count is not None and spec.count < 1:
        raise ConfigError(f"`count` must be a positive integer. Got {spec.count}.")
    for name in ("utilization", "default_utilization", "usable_memory_fraction"):
        value = getattr(spec, name)
        if value is not None and not 0 < value <= 1:
            raise ConfigError(f"`{name}` must be in (0, 1]. Got {value:g}.")
    for name in (
        "tokens_per_s",
        "model_flops_per_s",
        "hardware_flops_per_s",
        "wall_days",
        "accelerator_hours",
    ):
        value = getattr(spec, name)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"`{name}` must be positive. Got {value:g}.")
    check_site(spec)
    if spec.precision not in STATE_BYTES:
        raise ConfigError(
            f"`precision` for training must be one of {', '.join(STATE_BYTES)}. Got {spec.precision!r}."
        )
