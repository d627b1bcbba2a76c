"""Plan serving: prefill and decode throughput, KV-cache memory, replicas for a request rate, cost per token.

A replica is a group of ``tp`` accelerators holding one copy of the weights. Prefill is compute bound:
2N FLOPs per prompt token (N: the parameters active per token) plus the causal attention scores, at a
utilization below peak. Each decode step reads the weights once and every sequence's KV cache, so it
is bandwidth bound until the batch is large; a step takes the longer of its memory time and its compute
time. A replica runs ``batch`` requests per cycle: their prefills one after another, then
``output_tokens`` decode steps for all of them together.
The KV cache holds 2·L·kv_heads·head_dim values per token (grouped-query attention shrinks kv_heads).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcloop.config import ENERGY_DEFAULTS
from dcloop.errors import ConfigError
from dcloop.plan._catalog import Accelerator, get_accelerator
from dcloop.plan._energy import check_site, cost_covers, energy_cost
from dcloop.plan._models import ModelShape

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
MAX_BATCH = 1024


@dataclass(frozen=True)
class ServingSpec:
    """A language model to serve at ``target_rps`` requests/s of ``prompt_tokens`` in, ``output_tokens`` out."""

    model: ModelShape
    accelerator: str = "h100-sxm"
    target_rps: float = 1.0
    prompt_tokens: int = 512
    output_tokens: int = 256
    precision: str = "bf16"
    kv_precision: str | None = None
    batch: int | None = None
    tp: int | None = None
    latency_s: float | None = None
    compute_utilization: float = 0.5
    bandwidth_utilization: float = 0.8
    usable_memory_fraction: float = 0.9
    power_w: float | None = None
    pue: float = ENERGY_DEFAULTS.pue
    carbon_kg_per_kwh: float = ENERGY_DEFAULTS.carbon_kg_per_kwh
    price_per_kwh: float = ENERGY_DEFAULTS.price_per_kwh
    accelerator_hour_usd: float = 0.0


@dataclass(frozen=True)
class ServingPlan:
    spec: ServingSpec
    accelerator: Accelerator
    tp: int
    batch: int
    weights_gb: float
    kv_cache_bytes_per_token: float
    kv_cache_gb: float
    prefill_s: float
    decode_step_s: float
    decode_bound: str
    latency_s: float
    prefill_tokens_per_s_per_accelerator: float
    decode_tokens_per_s_per_accelerator: float
    requests_per_s_per_replica: float
    replicas: int
    accelerators: int
    energy_kwh_per_million_tokens: float
    co2_kg_per_million_tokens: float
    cost_usd_per_million_tokens: float

    def summary(self) -> dict[str, Any]:
        skip = {"spec", "accelerator"}
        data = {k: v for k, v in self.__dict__.items() if k not in skip}
        covers = cost_covers(self.spec)
        return {
            "model": self.spec.model.name,
            "accelerator": self.accelerator.name,
            **data,
            "cost_covers": covers,
        }


def kv_cache_bytes_per_token(model: ModelShape, bytes_per_value: float) -> float:
    """Keys and values of every layer for one token: 2·L·kv_heads·head_dim·bytes."""
    assert model.layers is not None and model.kv_heads is not None
    return 2 * model.layers * model.kv_heads * model.head_dim * bytes_per_value


@dataclass(frozen=True)
class _Replica:
    """One replica of ``tp`` accelerators running ``batch`` requests per cycle."""

    tp: int
    batch: int
    prefill_s: float
    step_s: float
    bound: str
    latency_s: float

    @property
    def rps(self) -> float:
        return self.batch / self.latency_s


def plan_serving(spec: ServingSpec, catalog: Mapping[str, Accelerator] | None = None) -> ServingPlan:
    """Size a deployment of ``spec``; raises ConfigError when it cannot fit or meet its latency.

    Without --tp, replicas of 1, 2, 4 and 8 accelerators (or the fewest that hold the weights, doubled up
    to 8x) are compared and the one serving the most requests per accelerator is chosen.
    """
    _check(spec)
    chip = get_accelerator(spec.accelerator, catalog)
    weights = spec.model.params * BYTES[spec.precision]
    kv_token = kv_cache_bytes_per_token(spec.model, BYTES[spec.kv_precision or spec.precision])
    context = spec.prompt_tokens + spec.output_tokens
    capacity = chip.memory_gb * 1e9 * spec.usable_memory_fraction
    smallest = _smallest_replica(weights + kv_token * context, capacity)
    sizes = (
        [spec.tp] if spec.tp else [smallest * 2**i for i in range(4) if smallest * 2**i <= max(8, smallest)]
    )
    replicas: list[_Replica] = []
    error: ConfigError | None = None
    for tp in sizes:
        try:
            replicas.append(_replica(spec, chip, tp, weights, kv_token, capacity))
        except ConfigError as exc:
            error = exc
    if not replicas:
        assert error is not None
        raise error
    best = max(replicas, key=lambda r: (r.rps / r.tp, -r.tp))
    count = math.ceil(spec.target_rps / best.rps - 1e-9)
    accelerators = count * best.tp
    million_tokens_per_hour = spec.target_rps * context * 3600 / 1e6
    hourly = energy_cost(spec, accelerators, chip.power_w(spec.power_w))  # one hour of the fleet
    return ServingPlan(
        spec=spec,
        accelerator=chip,
        tp=best.tp,
        batch=best.batch,
        weights_gb=weights / 1e9,
        kv_cache_bytes_per_token=kv_token,
        kv_cache_gb=best.batch * kv_token * context / 1e9,
        prefill_s=best.prefill_s,
        decode_step_s=best.step_s,
        decode_bound=best.bound,
        latency_s=best.latency_s,
        prefill_tokens_per_s_per_accelerator=spec.prompt_tokens / (best.prefill_s * best.tp),
        decode_tokens_per_s_per_accelerator=best.batch / (best.step_s * best.tp),
        requests_per_s_per_replica=best.rps,
        replicas=count,
        accelerators=accelerators,
        energy_kwh_per_million_tokens=hourly.facility_kwh / million_tokens_per_hour,
        co2_kg_per_million_tokens=hourly.co2_kg / million_tokens_per_hour,
        cost_usd_per_million_tokens=hourly.cost_usd / million_tokens_per_hour,
    )


def _replica(
    spec: ServingSpec, chip: Accelerator, tp: int, weights: float, kv_token: float, capacity: float
) -> _Replica:
    """Batch, timings and latency of one replica of ``tp`` accelerators."""
    model = spec.model
    context = spec.prompt_tokens + spec.output_tokens
    max_batch = min(MAX_BATCH, math.floor((tp * capacity - weights) / (kv_token * context)))
    if max_batch < 1:
        need = (weights + kv_token * context) / 1e9
        raise ConfigError(
            f"{model.name} needs {need:.1f} GB for its weights and one {context}-token KV cache but "
            f"tp={tp} x {chip.name} give {tp * capacity / 1e9:.1f} GB usable. Raise --tp."
        )
    peak = chip.peak_flops(spec.precision) * spec.compute_utilization * tp
    bandwidth = chip.memory_bw_gbs * 1e9 * spec.bandwidth_utilization * tp
    assert model.layers is not None and model.hidden is not None
    p, o, L, d = spec.prompt_tokens, spec.output_tokens, model.layers, model.hidden
    prefill = (2 * model.compute_params * p + 2 * L * p * p * d) / peak  # causal: half of 4·L·p·d per token

    def step(batch: int) -> tuple[float, str]:
        mean_context = p + o / 2
        memory_time = (weights + batch * kv_token * mean_context) / bandwidth
        compute_time = batch * (2 * model.compute_params + 4 * L * mean_context * d) / peak
        return max(memory_time, compute_time), "memory" if memory_time >= compute_time else "compute"

    def latency(batch: int) -> float:
        return batch * prefill + o * step(batch)[0]

    batch = spec.batch or _largest_batch(max_batch, latency, spec.latency_s)
    if batch > max_batch:
        raise ConfigError(
            f"`batch` {batch} does not fit: at most {max_batch} {context}-token sequences on tp={tp}."
        )
    if spec.latency_s is not None and latency(batch) > spec.latency_s:
        raise ConfigError(
            f"Cannot meet latency {spec.latency_s:g} s: batch {batch} on tp={tp} x {chip.name} takes "
            f"{latency(batch):.3g} s (prefill {prefill:.3g} s each, {o} decode steps of "
            f"{step(batch)[0] * 1e3:.3g} ms)."
        )
    step_s, bound = step(batch)
    return _Replica(
        tp=tp, batch=batch, prefill_s=prefill, step_s=step_s, bound=bound, latency_s=latency(batch)
    )


def _smallest_replica(bytes_needed: float, capacity: float) -> int:
    tp = 1
    while tp * capacity < bytes_needed and tp < 64:
        tp *= 2
    return tp


def _largest_batch(max_batch: int, latency: Any, target: float | None) -> int:
    """The largest batch within memory whose cycle meets ``target`` (latency grows with the batch)."""
    if target is None:
        return max_batch
    low, high = 1, max_batch
    while low < high:
        mid = (low + high + 1) // 2
        if latency(mid) <= target:
            low = mid
        else:
            high = mid - 1
    return low


def _check(spec: ServingSpec) -> None:
    if not spec.model.has_shape:
        raise ConfigError("Serving needs the model shape (--preset, or --layers/--hidden/--heads/--seq-len).")
    for name in ("precision", "kv_precision"):
        value = getattr(spec, name)
        if value is not None and value not in BYTES:
            raise ConfigError(f"`{name}` must be one of {', '.join(BYTES)}. Got {value!r}.")
    for name in ("target_rps", "latency_s"):
        value = getattr(spec, name)
        if value is not None and not value > 0:
            raise ConfigError(f"`{name}` must be positive. Got {value:g}.")
    for name in ("prompt_tokens", "output_tokens", "batch", "tp"):
        value = getattr(spec, name)
        if value is not None and value < 1:
            raise ConfigError(f"`{name}` must be a positive integer. Got {value}.")
    for name in ("compute_utilization", "bandwidth_utilization", "usable_memory_fraction"):
        value = getattr(spec, name)
        if not 0 < value <= 1:
            raise ConfigError(f"`{name}` must be in (0, 1]. Got {value:g}.")
    check_site(spec)
