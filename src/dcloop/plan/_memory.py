"""Training memory per accelerator: model states by precision and ZeRO stage, plus activations.

Model states follow Rajbhandari et al. 2020 (ZeRO), Section 3.1: mixed-precision Adam keeps 2 bytes of
weights, 2 of gradients and 12 of optimizer state (fp32 master weights, momentum, variance) per
parameter; fp32 training keeps 4 + 4 + 8. ZeRO stage 1 shards the optimizer state over data-parallel
ranks, stage 2 also the gradients, stage 3 also the weights.

Activations follow Korthikanti et al. 2022, Section 4 (Table 2): per layer s·b·h·(34 + 5·a·s/h) bytes
without recomputation, s·b·h·34 with selective recomputation (attention scores recomputed), 2·s·b·h
with full recomputation, all divided by the tensor-parallel degree t (sequence parallelism assumed
with tensor parallelism). With 1F1B pipelining the first stage holds p micro-batches of L/p layers,
i.e. L layers' worth. The 34 generalizes to grouped-query attention (K, V shrink by kv/heads) and to
gated MLPs of any width, and reduces to exactly 34 for a GPT layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcloop.errors import ConfigError
from dcloop.plan._models import ModelShape

RECOMPUTE = ("none", "selective", "full")
# bytes per parameter: (weights, gradients, optimizer states) for Adam
STATE_BYTES = {
    "fp32": (4, 4, 8),
    "tf32": (4, 4, 8),
    "fp16": (2, 2, 12),
    "bf16": (2, 2, 12),
    "fp8": (2, 2, 12),
}


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per accelerator of one training layout."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    capacity: float
    activations_estimated: bool
    tp: int
    pp: int
    dp: int
    zero_stage: int
    recompute: str

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    def as_gb(self) -> dict[str, float | bool]:
        return {
            "weights": self.weights / 1e9,
            "gradients": self.gradients / 1e9,
            "optimizer": self.optimizer / 1e9,
            "activations": self.activations / 1e9,
            "total": self.total / 1e9,
            "capacity": self.capacity / 1e9,
            "fits": self.fits,
            "activations_estimated": self.activations_estimated,
        }


def activation_bytes_per_layer(
    model: ModelShape, micro_batch: int, tp: int, recompute: str, precision: str
) -> float:
    """Korthikanti et al. 2022 activation bytes of one layer on one accelerator."""
    assert model.hidden is not None and model.seq_len is not None and model.heads is not None
    assert model.ffn is not None
    s, b, h, a = model.seq_len, micro_batch, model.hidden, model.heads
    scale = 2.0 if STATE_BYTES[precision][0] == 4 else 1.0  # the paper counts 2-byte activations
    if recompute == "full":
        return scale * 2 * s * b * h / tp
    attention = 7 + 4 * model.kv_ratio  # QKV input 2, Q 2, K and V 2 each (x kv/heads), proj input 2, mask 1
    mlp = 3 + (6 if model.gated_mlp else 4) * model.ffn / h  # input 2, mask 1, intermediate tensors
    per_token = attention + mlp + 4  # two layer norms' inputs
    if recompute == "none":
        per_token += 5 * a * s / h  # softmax output, dropout mask and output of the attention scores
    return scale * s * b * h * per_token / tp


def training_memory(
    model: ModelShape,
    precision: str,
    zero_stage: int,
    tp: int,
    pp: int,
    dp: int,
    micro_batch: int,
    recompute: str,
    capacity_bytes: float,
) -> MemoryBreakdown:
    """Bytes per accelerator for one (tp, pp, dp) layout."""
    _check_layout(zero_stage, tp, pp, dp, micro_batch, recompute)
    w, g, o = STATE_BYTES[precision]
    shard = model.params / (tp * pp)
    activations = 0.0
    if model.has_shape:
        assert model.layers is not None
        activations = model.layers * activation_bytes_per_layer(model, micro_batch, tp, recompute, precision)
    return MemoryBreakdown(
        weights=shard * w / (dp if zero_stage >= 3 else 1),
        gradients=shard * g / (dp if zero_stage >= 2 else 1),
        optimizer=shard * o / (dp if zero_stage >= 1 else 1),
        activations=activations,
        capacity=capacity_bytes,
        activations_estimated=model.has_shape,
        tp=tp,
        pp=pp,
        dp=dp,
        zero_stage=zero_stage,
        recompute=recompute,
    )


def min_data_parallel(
    model: ModelShape,
    precision: str,
    zero_stage: int,
    tp: int,
    pp: int,
    micro_batch: int,
    recompute: str,
    capacity_bytes: float,
) -> int:
    """Smallest data-parallel degree whose per-accelerator memory fits; a one-line error when none does."""
    args = (model, precision, zero_stage, tp, pp, micro_batch, recompute, capacity_bytes)
    dp = smallest_data_parallel(*args)
    if dp is None:
        floor = memory_floor(*args)
        short = (floor.total - capacity_bytes) / 1e9
        raise ConfigError(
            f"{model.name} cannot fit: {floor.total / 1e9:.1f} GB per accelerator even with ZeRO stage "
            f"{zero_stage} over unlimited data parallelism (tp={tp}, pp={pp}, recompute={recompute}), "
            f"{short:.1f} GB over the {capacity_bytes / 1e9:.1f} GB usable."
        )
    return dp


def smallest_data_parallel(
    model: ModelShape,
    precision: str,
    zero_stage: int,
    tp: int,
    pp: int,
    micro_batch: int,
    recompute: str,
    capacity_bytes: float,
) -> int | None:
    """Smallest data-parallel degree that fits, or None when even unlimited data parallelism does not."""
    one = training_memory(model, precision, zero_stage, tp, pp, 1, micro_batch, recompute, capacity_bytes)
    floor = memory_floor(model, precision, zero_stage, tp, pp, micro_batch, recompute, capacity_bytes)
    if not floor.fits:
        return None
    if one.fits:
        return 1
    sharded = one.total - floor.total  # the part that shrinks as 1/dp
    return max(1, math.ceil(sharded / (capacity_bytes - floor.total) - 1e-9))


def memory_floor(
    model: ModelShape,
    precision: str,
    zero_stage: int,
    tp: int,
    pp: int,
    micro_batch: int,
    recompute: str,
    capacity_bytes: float,
) -> MemoryBreakdown:
    """Memory per accelerator over unlimited data parallelism: what ZeRO sharding cannot remove."""
    return training_memory(
        model, precision, zero_stage, tp, pp, 10**12, micro_batch, recompute, capacity_bytes
    )


def _check_layout(zero_stage: int, tp: int, pp: int, dp: int, micro_batch: int, recompute: str) -> None:
    if zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"`zero_stage` must be 0, 1, 2 or 3. Got {zero_stage}.")
    for name, value in (("tp", tp), ("pp", pp), ("dp", dp), ("micro_batch", micro_batch)):
        if value < 1:
            raise ConfigError(f"`{name}` must be a positive integer. Got {value}.")
    if recompute not in RECOMPUTE:
        raise ConfigError(f"`recompute` must be one of {', '.join(RECOMPUTE)}. Got {recompute!r}.")
