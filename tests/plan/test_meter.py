"""JobMeter: energy source, PUE-charged CO2 and money, and the workspace's energy settings."""

from __future__ import annotations

import pytest

from dcloop.config import validate
from dcloop.meter import JobMeter, meter_for
from dcloop.plan import get_accelerator, load_catalog
from dcloop.workspace import Workspace


def _busy() -> int:
    return sum(i * i for i in range(300_000))


def test_meter_keeps_its_api_and_charges_pue() -> None:
    with JobMeter(watts_per_core=20.0, carbon_kg_per_kwh=0.5, price_per_kwh=0.3, pue=1.5) as meter:
        _busy()
    cost = meter.result()
    assert cost.energy_source in {"estimated", "rapl"}
    if cost.energy_source == "estimated":
        assert cost.energy_j == pytest.approx(cost.cpu_s * 20.0)
    assert cost.energy_kwh == pytest.approx(cost.energy_j / 3.6e6)
    assert cost.co2_kg == pytest.approx(cost.energy_kwh * 1.5 * 0.5)
    assert cost.cost_usd == pytest.approx(cost.energy_kwh * 1.5 * 0.3)
    assert set(cost.as_dict()) >= {
        "wall_s",
        "cpu_s",
        "peak_rss_mb",
        "energy_j",
        "energy_source",
        "energy_kwh",
        "co2_kg",
        "cost_usd",
    }


def test_meter_for_uses_workspace_settings_and_catalog_tdp(tmp_path) -> None:
    config = validate(
        {"energy": {"pue": 1.3, "carbon_kg_per_kwh": 0.05, "price_per_kwh": 0.2, "watts_per_cpu_core": 7.0}}
    )
    l4 = get_accelerator("l4", load_catalog()).tdp_w
    meter = meter_for(Workspace(root=tmp_path, config=config), gpu_tdp_w=l4)
    assert (meter.pue, meter.carbon, meter.price, meter.watts_per_core, meter.gpu_tdp_w) == (
        1.3,
        0.05,
        0.2,
        7.0,
        72,
    )
    with meter:
        _busy()
    cost = meter.result()
    if "nvml" not in cost.energy_source:  # no NVML here: the GPU is charged at its TDP and marked estimated
        assert "estimated" in cost.energy_source
        assert cost.energy_j >= 72 * cost.wall_s
    default = meter_for()
    assert default.pue == 1.2 and default.gpu_tdp_w is None


def test_peak_memory_is_the_blocks_own() -> None:
    import numpy as np

    size = 200 * 2**20
    with JobMeter() as big:
        block = np.ones(size, dtype=np.uint8)  # touched pages: resident
        during = big.result().peak_rss_mb  # a reading inside the block samples memory in use now
        del block
    with JobMeter() as idle:
        pass
    assert big.result().peak_rss_mb >= during >= idle.result().peak_rss_mb + 150
    assert idle.result().peak_rss_mb > 0


# A child holding 120 MB that starts a grandchild holding 80 MB; each says "ready" once its memory is
# resident, and both live until their stdin closes.
_HOLDER = """
import subprocess, sys
block = bytearray({mb} * 2**20)
block[::4096] = b"x" * len(block[::4096])
{spawn}
print("ready", flush=True)
sys.stdin.read()
"""


def _holder(mb: int, spawn: str = "") -> str:
    return _HOLDER.format(mb=mb, spawn=spawn)


@pytest.mark.parametrize("listed_by_kernel", [True, False])
def test_tree_memory_counts_every_live_descendant(monkeypatch, listed_by_kernel: bool) -> None:
    """The meter's process-tree reading (Linux's per-task children lists, or psutil's scan where the
    kernel lists none) counts children and grandchildren, as psutil's own tree does."""
    import os
    import subprocess
    import sys

    import psutil

    from dcloop import meter

    if not listed_by_kernel:
        monkeypatch.setattr(meter, "_descendants", lambda pid: None)  # as where /proc lists none
    alone = meter.tree_rss_bytes()
    grandchild = (
        f"g = subprocess.Popen([sys.executable, '-c', {_holder(80)!r}], stdin=subprocess.PIPE, "
        "stdout=subprocess.PIPE, text=True)\nassert g.stdout.readline().startswith('ready')"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _holder(120, grandchild)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().startswith("ready")
        tree = meter.tree_rss_bytes()
        me = psutil.Process()
        by_psutil = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
        holders = {child.pid, *(p.pid for p in psutil.Process(child.pid).children())}
        if listed_by_kernel:  # other tests may have left helpers (a resource tracker) running: a subset
            assert len(holders) == 2 and holders <= set(meter._descendants(os.getpid()) or [])
    finally:
        child.communicate("", timeout=60)
    assert tree - alone >= 190 * 2**20
    assert abs(tree - by_psutil) <= 0.05 * by_psutil
