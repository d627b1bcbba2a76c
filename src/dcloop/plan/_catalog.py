"""The hardware catalog: accelerators with their dense peak rates, memory, bandwidth and power.

The shipped entries live in ``hardware.yaml`` beside this module, each with the document its numbers
come from. A workspace adds its own under ``plan.hardware`` in dcloop.yaml.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from dcloop.errors import ConfigError, unknown_name

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
_NUMBERS = ("memory_gb", "memory_bw_gbs", "tdp_w", "interconnect_gbs")


@dataclass(frozen=True)
class Accelerator:
    """One accelerator chip. ``tflops`` maps a precision to its dense peak (TFLOP/s or TOP/s)."""

    name: str
    label: str
    tflops: Mapping[str, float]
    memory_gb: float
    memory_bw_gbs: float
    tdp_w: float | None = None
    interconnect_gbs: float | None = None
    interconnect: str = ""
    source: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``; a one-line error when the chip lacks it."""
        if precision not in self.tflops:
            have = ", ".join(sorted(self.tflops))
            raise ConfigError(
                f"{self.name} has no {precision} peak rate in the catalog (it has: {have}). "
                f"Choose --precision from those."
            )
        return self.tflops[precision] * 1e12

    def power_w(self, override: float | None) -> float:
        """The power to charge per accelerator: ``override`` or the catalog TDP."""
        if override is not None:
            return override
        if self.tdp_w is None:
            raise ConfigError(
                f"{self.name} has no published TDP in the catalog. Give the power with --power-w."
            )
        return self.tdp_w

    def source_of(self, field_name: str) -> str:
        return self.sources.get(field_name, self.source)


def load_catalog(
    extra: Iterable[Mapping[str, Any]] = (), source: str = "dcloop.yaml"
) -> dict[str, Accelerator]:
    """The shipped catalog plus ``extra`` entries (same fields as hardware.yaml), keyed by name."""
    catalog = {entry.name: entry for entry in _shipped()}
    for i, raw in enumerate(extra):
        entry = parse_accelerator(raw, f"{source} plan.hardware[{i}]")
        catalog[entry.name] = entry
    return catalog


@functools.cache
def _shipped() -> tuple[Accelerator, ...]:
    """The entries of hardware.yaml, parsed once per process (they are frozen)."""
    text = resources.files("dcloop.plan").joinpath("hardware.yaml").read_text(encoding="utf-8")
    return tuple(parse_accelerator(raw, "hardware.yaml") for raw in yaml.safe_load(text))


def get_accelerator(name: str, catalog: Mapping[str, Accelerator] | None = None) -> Accelerator:
    """Look ``name`` up (case-insensitive); unknown names get the close ones suggested."""
    catalog = load_catalog() if catalog is None else catalog
    key = name.strip().lower()
    if key not in catalog:
        raise unknown_name("accelerator", name, catalog)
    return catalog[key]


def parse_accelerator(raw: Any, where: str) -> Accelerator:
    """Validate one catalog entry, naming the field and value that is wrong."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping of accelerator fields. Got {raw!r}.")
    known = {"name", "label", "tflops", "source", "sources", "interconnect", *_NUMBERS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where} has unknown field(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name must be a non-empty string. Got {name!r}.")
    where = f"{where} ({name})"
    tflops = raw.get("tflops")
    if not isinstance(tflops, Mapping) or not tflops:
        raise ConfigError(f"{where}.tflops must map precisions ({', '.join(PRECISIONS)}) to dense TFLOP/s.")
    for precision, value in tflops.items():
        if precision not in PRECISIONS:
            raise ConfigError(
                f"{where}.tflops has unknown precision {precision!r}. Known: {', '.join(PRECISIONS)}."
            )
        _positive(value, f"{where}.tflops.{precision}")
    numbers = {key: raw.get(key) for key in _NUMBERS}
    for key in ("memory_gb", "memory_bw_gbs"):
        if numbers[key] is None:
            raise ConfigError(f"{where}.{key} is required.")
    for key, value in numbers.items():
        if value is not None:
            _positive(value, f"{where}.{key}")
    if not str(raw.get("source", "")).strip():
        raise ConfigError(f"{where}.source must name the document its numbers come from.")
    return Accelerator(
        name=name.strip().lower(),
        label=str(raw.get("label", name)),
        tflops=MappingProxyType({k: float(v) for k, v in tflops.items()}),
        memory_gb=float(numbers["memory_gb"]),  # type: ignore[arg-type]
        memory_bw_gbs=float(numbers["memory_bw_gbs"]),  # type: ignore[arg-type]
        tdp_w=_optional_float(numbers["tdp_w"]),
        interconnect_gbs=_optional_float(numbers["interconnect_gbs"]),
        interconnect=str(raw.get("interconnect", "")),
        source=str(raw["source"]),
        sources=MappingProxyType({str(k): str(v) for k, v in (raw.get("sources") or {}).items()}),
    )


def _positive(value: Any, where: str) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ConfigError(f"{where} must be a positive number. Got {value!r}.")


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
