"""A cluster job's cost: the driver's plus each piece's, estimated when any piece's energy was, and a
study's summed over its launches (no cluster needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dcloop.cluster._cost import sum_costs


def _cost(cpu_s: float, source: str = "rapl", wall_s: float = 10.0, peak: float = 100.0) -> dict[str, Any]:
    joules = cpu_s * 10.0
    kwh = joules / 3.6e6
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "peak_rss_mb": peak,
        "energy_j": joules,
        "energy_source": source,
        "energy_kwh": kwh,
        "co2_kg": kwh * 0.4,
        "cost_usd": kwh * 0.15,
        "pue": 1.2,
    }


def test_pieces_add_to_the_driver_and_one_estimate_marks_the_sum() -> None:
    driver, pieces = _cost(1.0, wall_s=30.0), [_cost(5.0, peak=300.0), _cost(7.0, "estimated", wall_s=20.0)]
    total = sum_costs(driver, pieces)
    assert total["cpu_s"] == 13.0 and total["energy_j"] == 130.0
    assert total["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in [driver, *pieces]))
    assert (total["wall_s"], total["pieces_wall_s"]) == (30.0, 30.0)  # elapsed is the driver's
    assert total["peak_rss_mb"] == 300.0 and total["pieces"] == 2 and total["driver"] == driver
    assert total["energy_source"] == "estimated"
    assert sum_costs(driver, pieces[:1])["energy_source"] == "rapl"


def test_a_study_sums_the_cost_of_each_launch(tmp_path: Path) -> None:
    import optuna

    from dcloop.cluster._tune import COST_ATTR, _record_cost
    from dcloop.optimize._study import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=open_storage(url, 1))
    first = sum_costs(_cost(1.0), [_cost(4.0)]) | {"nodes": ["a"]}
    second = sum_costs(_cost(2.0), [_cost(8.0, "estimated"), _cost(3.0)]) | {"nodes": ["b"]}
    _record_cost("s", url, 1, first)
    assert optuna.load_study(study_name="s", storage=url).user_attrs[COST_ATTR]["launches"] == 1
    _record_cost("s", url, 1, second)
    total = optuna.load_study(study_name="s", storage=url).user_attrs[COST_ATTR]
    assert total["launches"] == 2 and total["pieces"] == 3 and total["nodes"] == ["a", "b"]
    assert total["cpu_s"] == 18.0 and total["wall_s"] == 20.0 and total["energy_source"] == "estimated"
