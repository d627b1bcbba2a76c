"""Measured cost of a job: wall and CPU time, peak memory, energy, CO2 and money.

Energy comes from hardware counters where they exist (Intel/AMD RAPL under /sys/class/powercap),
otherwise it is estimated from CPU utilisation and a per-core power figure and marked "estimated".
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RAPL_ROOT = Path("/sys/class/powercap")
# Typical server CPU: ~10 W per busy core (e.g. a 250 W, 24-core part). Overridable.
DEFAULT_WATTS_PER_CORE = 10.0
DEFAULT_CARBON_KG_PER_KWH = 0.4
DEFAULT_PRICE_PER_KWH = 0.15


@dataclass(frozen=True)
class JobCost:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    energy_j: float
    energy_source: str  # "rapl", "nvml" or "estimated"
    energy_kwh: float
    co2_kg: float
    cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rapl_files() -> list[Path]:
    """Top-level package energy counters that this process can read."""
    files = []
    for zone in sorted(RAPL_ROOT.glob("intel-rapl:*")):
        counter = zone / "energy_uj"
        if ":" in zone.name[len("intel-rapl:") :]:
            continue  # sub-zones are counted inside their package
        try:
            int(counter.read_text())
        except (OSError, ValueError):
            continue
        files.append(counter)
    return files


def _read_uj(files: list[Path]) -> int:
    return sum(int(f.read_text()) for f in files)


class JobMeter:
    """Measure a block: ``with JobMeter() as m: ...; cost = m.result()``."""

    def __init__(
        self,
        watts_per_core: float = DEFAULT_WATTS_PER_CORE,
        carbon_kg_per_kwh: float = DEFAULT_CARBON_KG_PER_KWH,
        price_per_kwh: float = DEFAULT_PRICE_PER_KWH,
    ) -> None:
        self.watts_per_core = watts_per_core
        self.carbon = carbon_kg_per_kwh
        self.price = price_per_kwh
        self._rapl = _rapl_files()
        self._cost: JobCost | None = None

    def __enter__(self) -> JobMeter:
        self._t0 = time.perf_counter()
        self._cpu0 = _cpu_seconds()
        self._uj0 = _read_uj(self._rapl) if self._rapl else 0
        return self

    def __exit__(self, *exc: object) -> None:
        self._cost = self._measure()

    def result(self) -> JobCost:
        """The cost so far (inside the block) or of the whole block (after it)."""
        return self._cost or self._measure()

    def _measure(self) -> JobCost:
        wall = time.perf_counter() - self._t0
        cpu = _cpu_seconds() - self._cpu0
        if self._rapl:
            joules = max(_read_uj(self._rapl) - self._uj0, 0) / 1e6
            source = "rapl"
        else:
            joules = cpu * self.watts_per_core
            source = "estimated"
        kwh = joules / 3.6e6
        return JobCost(
            wall_s=wall,
            cpu_s=cpu,
            peak_rss_mb=_peak_rss_mb(),
            energy_j=joules,
            energy_source=source,
            energy_kwh=kwh,
            co2_kg=kwh * self.carbon,
            cost_usd=kwh * self.price,
        )


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0
