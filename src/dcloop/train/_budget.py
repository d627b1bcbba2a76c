"""The clock of a fit: a wall-time budget, an accuracy target, and where the time went.

With ``train.budget_s`` the budget, not ``train.epochs``, is the run's length, and the learning-rate
schedule follows the elapsed share of it rather than the step count: ``schedule.factor`` is read at
``elapsed / budget`` of the steps ``train.epochs`` would take, so one-cycle warms up and anneals
within the budget whatever the speed of the machine. The loop stops taking steps when the budget,
less the time the last validation and checkpoint took, is spent; the epoch it stopped in is
validated, so the run ends with its best weights.

The elapsed time is checkpointed with the epoch, so a resumed run continues its budget (the time
between the last checkpoint and the kill is not charged). A budgeted run cannot be resumed bit-equal:
where it stops depends on how fast the steps ran.
"""

from __future__ import annotations

import time
from typing import Any

import torch

PHASES = ("train", "validate", "checkpoint", "compile")


class Clock:
    """Elapsed wall time of a fit by phase, the stop decision, and time and energy to the target."""

    def __init__(self, budget_s: float | None, target: float | None) -> None:
        self.budget_s, self.target = budget_s, target
        self.spent = dict.fromkeys(PHASES, 0.0)
        self.before = 0.0  # wall seconds charged by earlier processes of this run (resume)
        self.energy_before = 0.0  # and their joules, while the target is not reached
        self.stopped_by = ""
        self.to_target: dict[str, Any] = {}
        self._t0 = time.perf_counter()
        self._meter: Any = None

    def start(self) -> Clock:
        """Start counting now (and metering energy, when there is a target)."""
        self._t0 = time.perf_counter()
        if self.target is not None and not self.to_target:
            from dcloop.meter import JobMeter

            self._meter = JobMeter().__enter__()
        return self

    def close(self) -> None:
        if self._meter is not None:
            self._meter.__exit__(None, None, None)
            self._meter = None

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self._t0

    def progress(self, step: int, total_steps: int) -> float:
        """Share of the run done, in [0, 1]: of the budget's time, or without one of the steps."""
        share = self.elapsed() / self.budget_s if self.budget_s is not None else step / max(total_steps, 1)
        return min(share, 1.0)

    def out_of_time(self, reserve_s: float) -> bool:
        """Whether the budget, less ``reserve_s`` for the closing validation and checkpoint, is spent."""
        return self.budget_s is not None and self.elapsed() + reserve_s >= self.budget_s

    def charge(self, phase: str, seconds: float) -> None:
        self.spent[phase] += seconds

    def reached(self, accuracy: float, epoch: int, step: int | None = None) -> bool:
        """Record the first check (epoch, and step within it) whose validation accuracy meets the target;
        True when it does."""
        if self.target is None or accuracy < self.target:
            return False
        if not self.to_target:
            self.to_target = {"epoch": epoch, "s": self.elapsed(), "val_accuracy": accuracy}
            if step is not None:
                self.to_target["step"] = step
            if self._meter is not None:
                cost = self._meter.result()
                joules = cost.energy_j + self.energy_before
                self.to_target |= {"energy_j": joules, "energy_source": cost.energy_source}
        return True

    def report(self, epochs: int) -> dict[str, Any]:
        """How the run spent its time: for the run record (fit.json, then the run's metrics)."""
        return {
            "budget_s": self.budget_s,
            "target_accuracy": self.target,
            "stopped_by": self.stopped_by or "epochs",
            "epochs": epochs,
            "elapsed_s": self.elapsed(),
            **{f"{phase}_s": seconds for phase, seconds in self.spent.items()},
            "to_target": self.to_target or None,
        }

    def state_dict(self) -> dict[str, Any]:
        energy = self._meter.result().energy_j if self._meter is not None else 0.0
        return {
            "elapsed": self.elapsed(),
            "spent": dict(self.spent),
            "stopped_by": self.stopped_by,
            "to_target": dict(self.to_target),
            "energy_j": energy + self.energy_before,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.before = float(state["elapsed"])  # ``start`` begins counting from here
        self.spent = {k: float(v) for k, v in state["spent"].items()}
        self.stopped_by, self.to_target = str(state["stopped_by"]), dict(state["to_target"])
        self.energy_before = float(state["energy_j"])


def agree(values: list[float], world: int, device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every rank (the stop and schedule decisions are rank 0's alone)."""
    if world == 1:
        return values
    import torch.distributed as dist

    shared = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(shared, src=0)
    return shared.tolist()
