"""Plan a training run: FLOPs, wall time, accelerator-hours, energy, cost, CO2 and memory.

Utilization is model FLOPs utilization (MFU, Chowdhery et al. 2022, appendix B): model FLOPs per
second over the dense peak. Hardware FLOPs add what activation recomputation does again, and their
ratio to the peak is the hardware FLOPs utilization (HFU) that Megatron-style throughput reports.
Instead of a utilization, give what a finished run measured: tokens/s or FLOP/s per accelerator, the
wall time (with the count), or the accelerator-hours; the planner derives the utilization from it.

A rate gives the steady-state time; the whole run takes steady-state / goodput (restarts, failures,
evaluation; see assumptions.yaml), and energy, CO2 and cost are charged on the whole run. A finished
run's wall time or accelerator-hours are whole-run figures. Time, energy and FLOPs never depend on the
memory layout: a model that does not fit is still planned, with ``fits`` false and what would fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcloop.config import ENERGY_DEFAULTS
from dcloop.errors import ConfigError
from dcloop.plan._assumptions import assumed
from dcloop.plan._catalog import Accelerator, get_accelerator
from dcloop.plan._energy import cost_covers, energy_cost
from dcloop.plan._layout import choose_layout, fit_hint
from dcloop.plan._memory import RECOMPUTE, MemoryBreakdown, training_memory
from dcloop.plan._models import ModelShape, attention_flops_per_token, flop_convention, train_flops_per_token
from dcloop.plan._training_checks import check_training_spec, training_warnings

# Typical large-run MFU: Llama 3 reports 38-43% BF16 MFU on 8K-16K H100s (Dubey et al. 2024, Table 4);
# PaLM 540B reached 46.2% on TPU v4 (Chowdhery et al. 2022, Table 3).
DEFAULT_MFU = 0.40
DEFAULT_GOODPUT = assumed("goodput")


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a training plan depends on. Give at most one of the pace inputs (RATE_INPUTS);
    else DEFAULT_MFU applies.

    ``zero_stage`` and ``recompute`` None: start from the defaults and raise them only when nothing
    fits. ``goodput`` None: ``default_goodput``.
    """

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
    goodput: float | None = None
    default_goodput: float = DEFAULT_GOODPUT
    precision: str = "bf16"
    recompute: str | None = None
    default_recompute: str = "selective"
    zero_stage: int | None = None
    default_zero_stage: int = 1
    tp: int | None = None  # None: the smallest tensor-parallel degree that fits (up to 8)
    pp: int | None = None  # None: the fewest pipeline stages that fit
    micro_batch: int = 1
    usable_memory_fraction: float = 0.9
    power_w: float | None = None
    pue: float = ENERGY_DEFAULTS.pue
    carbon_kg_per_kwh: float = ENERGY_DEFAULTS.carbon_kg_per_kwh
    price_per_kwh: float = ENERGY_DEFAULTS.price_per_kwh
    accelerator_hour_usd: float = 0.0

    @property
    def run_goodput(self) -> float:
        return self.default_goodput if self.goodput is None else self.goodput


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
    steady_wall_s: float
    wall_s: float
    accelerator_hours: float
    power_w: float
    energy_it_kwh: float
    energy_facility_kwh: float
    co2_kg: float
    cost_energy_usd: float
    cost_compute_usd: float
    memory: MemoryBreakdown
    min_accelerators: int | None
    fit_hint: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def cost_usd(self) -> float:
        return self.cost_energy_usd + self.cost_compute_usd

    @property
    def steady_accelerator_hours(self) -> float:
        return self.count * self.steady_wall_s / 3600

    def summary(self) -> dict[str, Any]:
        """The figures as plain numbers (JSON-ready), in the units people quote."""
        return {
            "model": self.spec.model.name,
            "params": self.spec.model.params,
            "active_params": self.spec.model.compute_params,
            "tokens": self.spec.tokens,
            "accelerator": self.accelerator.name,
            "count": self.count,
            "derived_from": self.derived_from,
            "model_flops": self.model_flops,
            "hardware_flops": self.hardware_flops,
            "flop_convention": flop_convention(self.spec.model, self.memory.recompute),
            "mfu": self.mfu,
            "hfu": self.hfu,
            "tokens_per_s_per_accelerator": self.tokens_per_s_per_accelerator,
            "goodput": self.spec.run_goodput,
            "steady_wall_days": self.steady_wall_s / 86400,
            "wall_days": self.wall_s / 86400,
            "steady_accelerator_hours": self.steady_accelerator_hours,
            "accelerator_hours": self.accelerator_hours,
            "power_w": self.power_w,
            "energy_it_mwh": self.energy_it_kwh / 1000,
            "energy_facility_mwh": self.energy_facility_kwh / 1000,
            "co2_t": self.co2_kg / 1000,
            "cost_energy_usd": self.cost_energy_usd,
            "cost_compute_usd": self.cost_compute_usd,
            "cost_usd": self.cost_usd,
            "cost_covers": cost_covers(self.spec),
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
            "fit_hint": self.fit_hint,
            "warnings": list(self.warnings),
        }


def plan_training(spec: TrainingSpec, catalog: Mapping[str, Accelerator] | None = None) -> TrainingPlan:
    """Plan ``spec`` on its accelerator; raises ConfigError on contradictory input, never on memory."""
    check_training_spec(spec)
    chip = get_accelerator(spec.accelerator, catalog)
    peak = chip.peak_flops(spec.precision)
    capacity = chip.memory_gb * 1e9 * spec.usable_memory_fraction
    zero = [spec.zero_stage] if spec.zero_stage is not None else range(spec.default_zero_stage, 4)
    recomputes = [spec.recompute] if spec.recompute is not None else _recompute_search(spec)
    layout = choose_layout(
        spec.model, spec.precision, zero, spec.tp, spec.pp, spec.micro_batch, recomputes, capacity, spec.count
    )
    count = spec.count if spec.count is not None else layout.group * layout.dp
    if count % layout.group:
        raise ConfigError(
            f"`count` ({count}) must be a multiple of tp x pp = {layout.tp} x {layout.pp} = {layout.group}."
        )
    memory = training_memory(
        spec.model,
        spec.precision,
        layout.zero_stage,
        layout.tp,
        layout.pp,
        count // layout.group,
        spec.micro_batch,
        layout.recompute,
        capacity,
    )
    model_flops = train_flops_per_token(spec.model) * spec.tokens
    hardware_flops = hardware_flops_per_token(spec.model, layout.recompute) * spec.tokens
    derived_from, steady_s, wall_s = _wall_seconds(spec, count, peak, model_flops, hardware_flops)
    hours = count * wall_s / 3600
    power = chip.power_w(spec.power_w)
    energy = energy_cost(spec, hours, power)
    mfu = model_flops / (count * peak * steady_s)
    hfu = hardware_flops / (count * peak * steady_s)
    return TrainingPlan(
        spec=spec,
        accelerator=chip,
        count=count,
        derived_from=derived_from,
        model_flops=model_flops,
        hardware_flops=hardware_flops,
        peak_flops_per_s=peak,
        mfu=mfu,
        hfu=hfu,
        tokens_per_s_per_accelerator=spec.tokens / (count * steady_s),
        steady_wall_s=steady_s,
        wall_s=wall_s,
        accelerator_hours=hours,
        power_w=power,
        energy_it_kwh=energy.it_kwh,
        energy_facility_kwh=energy.facility_kwh,
        co2_kg=energy.co2_kg,
        cost_energy_usd=energy.cost_energy_usd,
        cost_compute_usd=energy.cost_compute_usd,
        memory=memory,
        min_accelerators=layout.min_count,
        fit_hint="" if memory.fits else fit_hint(spec.model, memory, layout.min_count, spec, chip.name),
        warnings=training_warnings(spec, derived_from, mfu, hfu, layout.recompute),
    )


def hardware_flops_per_token(model: ModelShape, recompute: str) -> float:
    """Model FLOPs plus recomputation: a second forward (full) or the attention scores again (selective)."""
    base = train_flops_per_token(model)
    if recompute == "full":
        return base + 2 * model.compute_params + attention_flops_per_token(model, forward_and_backward=False)
    if recompute == "selective":
        return base + attention_flops_per_token(model, forward_and_backward=False)
    return base


def _recompute_search(spec: TrainingSpec) -> list[str]:
    """The default recomputation first, then the ones that save more activation memory (a model known
    only by its parameter count has no activation estimate, so recomputation changes nothing there)."""
    default = spec.default_recompute
    if default not in RECOMPUTE or not spec.model.has_shape:
        return [default]
    return list(RECOMPUTE[RECOMPUTE.index(default) :])


def _wall_seconds(
    spec: TrainingSpec, count: int, peak: float, model_flops: float, hardware_flops: float
) -> tuple[str, float, float]:
    """Which input sets the pace, and the steady-state and whole-run wall times it gives."""
    goodput = spec.run_goodput
    if spec.wall_days is not None:
        return "wall_days", spec.wall_days * 86400 * goodput, spec.wall_days * 86400
    if spec.accelerator_hours is not None:
        whole = spec.accelerator_hours * 3600 / count
        return "accelerator_hours", whole * goodput, whole
    if spec.tokens_per_s is not None:
        source, steady = "tokens_per_s", spec.tokens / (count * spec.tokens_per_s)
    elif spec.model_flops_per_s is not None:
        source, steady = "model_flops_per_s", model_flops / (count * spec.model_flops_per_s)
    elif spec.hardware_flops_per_s is not None:
        source, steady = "hardware_flops_per_s", hardware_flops / (count * spec.hardware_flops_per_s)
    else:
        utilization = spec.utilization if spec.utilization is not None else spec.default_utilization
        source = "utilization" if spec.utilization is not None else "default_utilization"
        steady = model_flops / (count * peak * utilization)
    return source, steady, steady / goodput
