"""One cost for a job whose pieces ran in several processes and nodes: the driver's plus each piece's.

Each piece measures itself with dcloop's JobMeter (counters where the node has them, else estimated),
so the sum is estimated as soon as one piece's energy was. Wall time is the driver's (it waits for
every piece), ``pieces_wall_s`` the pieces' busy time; peak memory is the largest single process's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SUMMED = ("cpu_s", "energy_j", "energy_kwh", "co2_kg", "cost_usd")


def sum_costs(driver: Mapping[str, Any], pieces: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The driver's cost (``JobCost.as_dict()``, any further keys kept) plus ``pieces``', with the
    driver's own kept beside."""
    total = dict(driver) | {key: driver[key] + sum(p[key] for p in pieces) for key in SUMMED}
    sources = [driver["energy_source"], *(p["energy_source"] for p in pieces)]
    total["energy_source"] = "estimated" if any("estimated" in s for s in sources) else sources[0]
    total["peak_rss_mb"] = max([driver["peak_rss_mb"], *(p["peak_rss_mb"] for p in pieces)])
    total["pieces_wall_s"] = sum(p["wall_s"] for p in pieces)  # wall_s stays the driver's: it waited
    return {**total, "driver": dict(driver), "pieces": len(pieces)}
