"""Which variant to recommend, and which variants are Pareto-optimal.

Selection rule: among variants that lose at most ``max_accuracy_drop`` test-accuracy points against
the fp32 baseline, the best on ``objective``. The baseline itself always qualifies, so the rule
always names a variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# objective -> (metric key, sign): smaller sign * value is better
OBJECTIVES: dict[str, tuple[str, float]] = {
    "latency": ("latency_p50_ms", 1.0),
    "throughput": ("throughput_ips", -1.0),
    "size": ("size_bytes", 1.0),
    "flops": ("flops", 1.0),
    "energy": ("energy_j_per_1k", 1.0),
}


def accuracy_drop(baseline: Mapping[str, Any], metrics: Mapping[str, Any]) -> float:
    """Test-accuracy points lost against the baseline (negative: a gain)."""
    return 100.0 * (float(baseline["accuracy"]) - float(metrics["accuracy"]))


def select(metrics: Sequence[Mapping[str, Any]], baseline_index: int, max_drop: float, objective: str) -> int:
    """Index of the recommended variant (ties go to the earlier, simpler one)."""
    key, sign = OBJECTIVES[objective]
    baseline = metrics[baseline_index]
    allowed = [
        i
        for i, m in enumerate(metrics)
        if i == baseline_index or accuracy_drop(baseline, m) <= max_drop + 1e-9
    ]
    return min(allowed, key=lambda i: (sign * float(metrics[i][key]), i))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated when ``x`` is minimised and ``y`` maximised."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def rule_text(max_drop: float, objective: str) -> str:
    return f"best {objective} within {max_drop:g} accuracy points of the fp32 baseline"
