"""Check the planner against published training runs (published_runs.yaml beside this module).

Two checks per run, kept apart so one error does not hide in the other: whole-run accelerator-hours
planned from the stated throughput or utilization and the run's goodput (within ``HOURS_TOLERANCE``), and energy and CO2 planned
from the published accelerator-hours with the stated power, PUE and carbon intensity (within
``ENERGY_TOLERANCE``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import yaml

from dcloop.plan._models import get_preset
from dcloop.plan._training import TrainingPlan, TrainingSpec, plan_training

HOURS_TOLERANCE = 0.15
ENERGY_TOLERANCE = 0.05


@dataclass(frozen=True)
class ValidationResult:
    name: str
    title: str
    source: str
    hours_published: float
    hours_planned: float | None
    energy_published_mwh: float | None
    energy_planned_mwh: float
    co2_published_t: float | None
    co2_planned_t: float
    mfu_from_published_hours: float

    @property
    def hours_error(self) -> float | None:
        return _error(self.hours_planned, self.hours_published)

    @property
    def energy_error(self) -> float | None:
        return _error(self.energy_planned_mwh, self.energy_published_mwh)

    @property
    def co2_error(self) -> float | None:
        return _error(self.co2_planned_t, self.co2_published_t)

    @property
    def passed(self) -> bool:
        checks = [
            (self.hours_error, HOURS_TOLERANCE),
            (self.energy_error, ENERGY_TOLERANCE),
            (self.co2_error, ENERGY_TOLERANCE),
        ]
        return all(abs(error) <= limit for error, limit in checks if error is not None)

    def summary(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.update(
            hours_error_pct=_pct(self.hours_error),
            energy_error_pct=_pct(self.energy_error),
            co2_error_pct=_pct(self.co2_error),
            passed=self.passed,
        )
        return data


def load_published_runs() -> list[dict[str, Any]]:
    """The published runs as plain mappings (see the comments at the top of the YAML)."""
    text = resources.files("dcloop.plan").joinpath("published_runs.yaml").read_text(encoding="utf-8")
    runs: list[dict[str, Any]] = yaml.safe_load(text)
    return runs


def run_spec(run: dict[str, Any]) -> TrainingSpec:
    """The training spec a published run states (its rate included, when it has one)."""
    rate: dict[str, Any] = {k: float(v) for k, v in (run.get("rate") or {}).items()}
    return TrainingSpec(
        model=get_preset(run["preset"]),
        tokens=float(run["tokens"]),
        accelerator=run["accelerator"],
        count=int(run["count"]),
        precision=run["precision"],
        power_w=float(run["power_w"]),
        pue=float(run["pue"]),
        carbon_kg_per_kwh=float(run["carbon_kg_per_kwh"]),
        goodput=_float(run.get("goodput")),
        **run.get("layout", {}),
        **rate,
    )


def validate_run(run: dict[str, Any]) -> ValidationResult:
    """Plan one published run both ways and pair each figure with its published value."""
    spec = run_spec(run)
    published = run["published"]
    hours = float(published["accelerator_hours"])
    has_rate = bool(run.get("rate"))
    planned_hours = plan_training(spec).accelerator_hours if has_rate else None
    rates = {
        "utilization": None,
        "tokens_per_s": None,
        "model_flops_per_s": None,
        "hardware_flops_per_s": None,
    }
    from_hours = plan_training(replace(spec, accelerator_hours=hours, **rates))  # type: ignore[arg-type]
    return ValidationResult(
        name=run["name"],
        title=run["title"],
        source=run["source"],
        hours_published=hours,
        hours_planned=planned_hours,
        energy_published_mwh=_float(published.get("energy_mwh")),
        energy_planned_mwh=_energy(from_hours, published.get("energy_basis", "facility")) / 1000,
        co2_published_t=_float(published.get("co2_t")),
        co2_planned_t=_energy(from_hours, published.get("co2_basis", "facility"))
        * spec.carbon_kg_per_kwh
        / 1000,
        mfu_from_published_hours=from_hours.mfu,
    )


def validate_published() -> list[ValidationResult]:
    """Every published run, checked."""
    return [validate_run(run) for run in load_published_runs()]


def _energy(plan: TrainingPlan, basis: str) -> float:
    return plan.energy_it_kwh if basis == "it" else plan.energy_facility_kwh


def _error(planned: float | None, published: float | None) -> float | None:
    if planned is None or published is None:
        return None
    return planned / published - 1


def _pct(error: float | None) -> float | None:
    return None if error is None else 100 * error


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
