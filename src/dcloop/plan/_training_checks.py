"""Checks of a training spec before it is planned, and the warnings a finished plan carries."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dcloop.errors import ConfigError
from dcloop.plan._energy import check_site
from dcloop.plan._memory import RECOMPUTE, STATE_BYTES

if TYPE_CHECKING:
    from dcloop.plan._training import TrainingSpec

# What can set a run's pace: a utilization, a measured rate, or a finished run's totals.
RATE_INPUTS = (
    "utilization",
    "tokens_per_s",
    "model_flops_per_s",
    "hardware_flops_per_s",
    "wall_days",
    "accelerator_hours",
)


def training_warnings(
    spec: TrainingSpec, derived_from: str, mfu: float, hfu: float, recompute: str
) -> tuple[str, ...]:
    """What a reader should not miss: impossible utilizations and the FLOP count a measured rate uses."""
    out = []
    if mfu > 1 or hfu > 1:
        moe = (
            "" if spec.model.active_params is not None else "; for a mixture of experts give --active-params"
        )
        out.append(
            f"implied MFU {mfu:.2f} (HFU {hfu:.2f}) exceeds 1, more than the accelerator's peak: check "
            f"the inputs{moe}"
        )
    if derived_from == "hardware_flops_per_s" and spec.recompute is None and recompute != "full":
        out.append(
            f"the measured hardware FLOP/s is read with recompute {recompute}; rates that count full "
            "recomputation (Megatron and DeepSpeed logs: 8N per token) need --recompute full"
        )
    return tuple(out)


def check_training_spec(spec: TrainingSpec) -> None:
    """Raise ConfigError, naming the field, on contradictory or out-of-range inputs."""
    given = [name for name in RATE_INPUTS if getattr(spec, name) is not None]
    if len(given) > 1:
        values = ", ".join(f"{name}={getattr(spec, name):g}" for name in given)
        raise ConfigError(
            f"Give at most one of {', '.join(RATE_INPUTS)}: they contradict each other. Got {values}."
        )
    if spec.wall_days is not None and spec.count is None:
        raise ConfigError(
            "`wall_days` describes a finished run and needs its `count`; to size a cluster for a "
            "deadline use `dcloop plan fit --days`."
        )
    if not spec.tokens > 0:
        raise ConfigError(f"`tokens` must be positive. Got {spec.tokens:g}.")
    if not spec.model.params > 0:
        raise ConfigError(f"`params` must be positive. Got {spec.model.params:g}.")
    active = spec.model.active_params
    if active is not None and not 0 < active <= spec.model.params:
        raise ConfigError(
            f"`active_params` must be positive and at most `params` ({spec.model.params:g}). Got {active:g}."
        )
    if spec.count is not None and spec.count < 1:
        raise ConfigError(f"`count` must be a positive integer. Got {spec.count}.")
    for name in (
        "utilization",
        "default_utilization",
        "goodput",
        "default_goodput",
        "usable_memory_fraction",
    ):
        value = getattr(spec, name)
        if value is not None and not 0 < value <= 1:
            hint = f" Did you mean {value / 100:g}?" if 1 < value <= 100 else ""
            raise ConfigError(f"`{name}` must be in (0, 1]. Got {value:g}.{hint}")
    for name in (
        "tokens_per_s",
        "model_flops_per_s",
        "hardware_flops_per_s",
        "wall_days",
        "accelerator_hours",
    ):
        value = getattr(spec, name)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"`{name}` must be positive. Got {value:g}.")
    check_site(spec)
    if spec.precision not in STATE_BYTES:
        raise ConfigError(
            f"`precision` for training must be one of {', '.join(STATE_BYTES)}. Got {spec.precision!r}."
        )
    for name, allowed in (("zero_stage", (0, 1, 2, 3)), ("default_zero_stage", (0, 1, 2, 3))):
        if getattr(spec, name) not in (None, *allowed):
            raise ConfigError(f"`{name}` must be 0, 1, 2 or 3. Got {getattr(spec, name)}.")
    for name in ("recompute", "default_recompute"):
        if getattr(spec, name) not in (None, *RECOMPUTE):
            raise ConfigError(f"`{name}` must be one of {', '.join(RECOMPUTE)}. Got {getattr(spec, name)!r}.")
