"""Measured cost of a job: wall and CPU time, peak memory, energy, CO2 and money.

Energy comes from hardware counters where they exist (Intel/AMD RAPL under /sys/class/powercap for
the CPU packages, NVML's total-energy counter on NVIDIA GPUs when ``pynvml`` is importable); where a
counter is missing the energy is estimated (CPU time x watts per core; a GPU named without NVML at its
catalog TDP for the wall time) and the source says "estimated". CO2 and money are charged on the
energy times the PUE, with the workspace's settings via :func:`meter_for`.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from dcloop.config import ENERGY_DEFAULTS

if TYPE_CHECKING:
    from dcloop.workspace import Workspace

logger = logging.getLogger(__name__)
RAPL_ROOT = Path("/sys/class/powercap")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class JobCost:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    energy_j: float
    energy_source: str  # "rapl", "nvml", "rapl+nvml", "estimated", or a counter "+estimated"
    energy_kwh: float  # IT energy of the job (before PUE)
    co2_kg: float
    cost_usd: float
    pue: float = 1.0

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
        watts_per_core: float = ENERGY_DEFAULTS.watts_per_cpu_core,
        carbon_kg_per_kwh: float = ENERGY_DEFAULTS.carbon_kg_per_kwh,
        price_per_kwh: float = ENERGY_DEFAULTS.price_per_kwh,
        pue: float = ENERGY_DEFAULTS.pue,
        gpu_tdp_w: float | None = None,
    ) -> None:
        self.watts_per_core = watts_per_core
        self.carbon = carbon_kg_per_kwh
        self.price = price_per_kwh
        self.pue = pue
        self.gpu_tdp_w = gpu_tdp_w  # charged for the wall time when a GPU is used but NVML is missing
        self._rapl = _rapl_files()
        self._nvml = _nvml_handles()
        self._cost: JobCost | None = None
        self._memory = _PeakMemory()

    def __enter__(self) -> JobMeter:
        self._t0 = time.perf_counter()
        self._cpu0 = _cpu_seconds()
        self._uj0 = _read_uj(self._rapl) if self._rapl else 0
        self._gpu_mj0 = _read_nvml_mj(self._nvml)
        self._memory.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._memory.stop()
        self._cost = self._measure()

    def result(self) -> JobCost:
        """The cost so far (inside the block) or of the whole block (after it)."""
        return self._cost or self._measure()

    def _measure(self) -> JobCost:
        wall = time.perf_counter() - self._t0
        cpu = _cpu_seconds() - self._cpu0
        if self._rapl:
            joules = max(_read_uj(self._rapl) - self._uj0, 0) / 1e6
            sources = ["rapl"]
        else:
            joules = cpu * self.watts_per_core
            sources = ["estimated"]
        gpu_mj = _read_nvml_mj(self._nvml)
        if gpu_mj is not None and self._gpu_mj0 is not None:  # None without NVML handles
            joules += max(gpu_mj - self._gpu_mj0, 0) / 1e3
            sources.append("nvml")
        elif self.gpu_tdp_w is not None:
            joules += self.gpu_tdp_w * wall
            sources.append("estimated")
        kwh = joules / 3.6e6
        return JobCost(
            wall_s=wall,
            cpu_s=cpu,
            peak_rss_mb=self._memory.peak_mb(),
            energy_j=joules,
            energy_source="+".join(dict.fromkeys(sources)),
            energy_kwh=kwh,
            co2_kg=kwh * self.pue * self.carbon,
            cost_usd=kwh * self.pue * self.price,
            pue=self.pue,
        )


def meter_for(workspace: Workspace | None = None, gpu_tdp_w: float | None = None) -> JobMeter:
    """A JobMeter with the workspace's energy settings (defaults without one).

    ``gpu_tdp_w`` is charged for the wall time when a GPU is used without NVML: the planner's catalog
    has it per accelerator (``dcloop.plan.get_accelerator(name, catalog).tdp_w``); the meter sits
    below the planner and does not read the catalog itself.
    """
    energy = workspace.config.energy if workspace is not None else ENERGY_DEFAULTS
    return JobMeter(
        watts_per_core=energy.watts_per_cpu_core,
        carbon_kg_per_kwh=energy.carbon_kg_per_kwh,
        price_per_kwh=energy.price_per_kwh,
        pue=energy.pue,
        gpu_tdp_w=gpu_tdp_w,
    )


def _nvml_handles() -> list[Any]:
    """NVML device handles with a total-energy counter; empty without pynvml or a driver."""
    try:
        import pynvml  # optional: only on machines with NVIDIA GPUs
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        for handle in handles:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as exc:
        logger.debug("NVML energy counters unavailable: %s", exc)
        return []
    return handles


def _read_nvml_mj(handles: list[Any]) -> float | None:
    """Total energy of the GPUs in millijoules since the driver loaded."""
    if not handles:
        return None
    import pynvml

    try:
        return float(sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles))
    except pynvml.NVMLError as exc:
        logger.debug("NVML energy read failed: %s", exc)
        return None


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (DDP workers, subprocesses)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


class _PeakMemory:
    """Peak resident memory of this process and its live children while a block runs.

    Sampled every ``interval_s`` (the process tree: data-parallel workers count too); the kernel's
    own high-water mark of this process adds the spikes between samples, but only when it rose
    inside the block, since it never resets and an earlier job's peak is not this block's.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self._peak = 0
        self._stop = threading.Event()
        self._stop.set()  # not started
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._hwm0 = _high_water_bytes()
        self._sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dcloop-meter-memory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        hwm = _high_water_bytes()
        if hwm > self._hwm0:
            self._peak = max(self._peak, hwm)

    def peak_mb(self) -> float:
        """The peak so far; inside the block it includes the memory in use right now."""
        if not self._stop.is_set():
            self._sample()
        return self._peak / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        self._peak = max(self._peak, tree_rss_bytes())


def tree_rss_bytes(pid: int | None = None) -> int:
    """Resident bytes of process ``pid`` (this one by default) and its live descendants.

    On Linux the descendants come from ``/proc/PID/task/TID/children`` and each size from
    ``/proc/PID/statm``: a few small reads whatever else the machine runs. psutil's ``children()``
    reads the parent of every process on the machine, which on a busy host costs milliseconds per call
    and takes CPU from the job being measured; it serves where the kernel lists no children."""
    pid = os.getpid() if pid is None else pid
    below = _descendants(pid)
    if below is None:
        return psutil_tree_rss_bytes(pid)
    return sum(_statm_rss(p) for p in [pid, *below])


def psutil_tree_rss_bytes(pid: int | None = None) -> int:
    """``tree_rss_bytes`` through psutil's scan of every process on the machine."""
    root = psutil.Process(pid)
    total = root.memory_info().rss
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # ended between listing and reading
            continue
    return total


def _statm_rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):  # ended meanwhile
        return 0


def _descendants(pid: int) -> list[int] | None:
    """PIDs below ``pid`` from the kernel's per-task children lists; None where there are none (not
    Linux, or a kernel built without them)."""
    if not Path(f"/proc/{pid}/task/{pid}/children").exists():
        return None
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:  # a child that ended meanwhile
            continue
        for task in tasks:
            try:
                listed = (task / "children").read_text()
            except OSError:  # a thread that ended meanwhile
                continue
            for child in map(int, listed.split()):
                found.append(child)
                todo.append(child)
    return found


def _high_water_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB
