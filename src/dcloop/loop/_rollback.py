"""`loop.auto_rollback`: whether the newest promotion made the champion worse on live feedback.

The champion's live accuracy on labelled predictions is compared with that of the version it
replaced (as ``dcloop models rollback`` would restore it). It is rolled back when it is lower by more
than ``margin`` with significance: a one-sided two-proportion z-test of "new < old - margin".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcloop.workspace import Workspace


@dataclass(frozen=True)
class RollbackCheck:
    """The two versions compared, their live accuracy and labels, and the test's p-value."""

    champion: str
    previous: str
    accuracy: float
    previous_accuracy: float
    labelled: int
    previous_labelled: int
    p_value: float

    @property
    def reason(self) -> str:
        return (
            f"{self.champion} live accuracy {self.accuracy:.3f} on {self.labelled} labels vs "
            f"{self.previous_accuracy:.3f} on {self.previous_labelled} for {self.previous} (p = {self.p_value:.2g})"
        )


def worse_p_value(old_correct: int, old_n: int, new_correct: int, new_n: int, margin: float) -> float:
    """One-sided p-value of "new accuracy < old accuracy - margin" (two-proportion z-test, unpooled)."""
    old, new = old_correct / old_n, new_correct / new_n
    spread = math.sqrt(max(old * (1 - old) / old_n + new * (1 - new) / new_n, 1e-12))
    z = (old - margin - new) / spread
    return 0.5 * math.erfc(z / math.sqrt(2))  # P(Z >= z)


def check_rollback(ws: Workspace, model: str, margin: float, min_labels: int) -> RollbackCheck | None:
    """Compare the champion with the version before it; None while either has too few labels."""
    from dcloop.deploy import alias_history, get_model_version
    from dcloop.store.predictions import prediction_stats

    stack: list[int] = []
    for move in alias_history(ws, model, "champion"):  # as `rollback` walks it
        if move.kind == "rollback":
            stack.pop()
        elif move.to_version is not None:
            stack.append(move.to_version)
    if len(stack) < 2:
        return None
    versions = [get_model_version(ws, f"{model}@{n}") for n in stack[-2:]]
    stats = [prediction_stats(ws.store, model_version=v.id) for v in versions]
    if any(s["labelled"] < min_labels for s in stats):
        return None
    (old, new), (old_v, new_v) = stats, versions
    correct = [round(s["accuracy"] * s["labelled"]) for s in stats]
    p = worse_p_value(correct[0], old["labelled"], correct[1], new["labelled"], margin)
    return RollbackCheck(
        new_v.ref, old_v.ref, new["accuracy"], old["accuracy"], new["labelled"], old["labelled"], p
    )
