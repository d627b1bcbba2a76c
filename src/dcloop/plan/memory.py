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
from collections.abc import Sequence
from dataclasses import dataclass

from dcloop.errors import ConfigError
from dcloop.plan.models import ModelShape

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
    dp = _smallest_dp(*args)
    if dp is None:
        floor = _floor(*args)
        short = (floor.total - capacity_bytes) / 1e9
        raise ConfigError(
            f"{model.name} cannot fit: {floor.total / 1e9:.1f} GB per accelerator even with ZeRO stage "
            f"{zero_stage} over unlimited data parallelism (tp={tp}, pp={pp}, recompute={recompute}), "
            f"{short:.1f} GB over the {capacity_bytes / 1e9:.1f} GB usable."
        )
    return dp


@dataclass(frozen=True)
class Layout:
    """A parallel layout and the fewest accelerators that fit (``min_count`` None: nothing tried fits)."""

    tp: int
    pp: int
    dp: int
    zero_stage: int
    recompute: str
    min_count: int | None

    @property
    def group(self) -> int:
        return self.tp * self.pp


PIPELINE_DEGREES = (1, 2, 4, 8, 16, 32, 64, 128)


def choose_layout(
    model: ModelShape,
    precision: str,
    zero_stages: Sequence[int],
    tp: int | None,
    pp: int | None,
    micro_batch: int,
    recomputes: Sequence[str],
    capacity_bytes: float,
    count: int | None,
) -> Layout:
    """The layout to plan with, for the given degrees or searched when None; it never refuses.

    Candidates are the pairs of a ZeRO stage of ``zero_stages`` and a recomputation of ``recomputes``,
    the first pair being the defaults: they are used when anything fits with them, else the pair
    needing the fewest accelerators (with a ``count``, the first pair that fits at it). Unset degrees are
    searched smallest model-parallel group first: tensor parallelism up to 8 (one node), pipeline
    stages in powers of two up to the layer count (up to 128 when the layer count is unknown). Without
    a ``count`` the layout needing the fewest accelerators is taken; with one, the first whose group
    divides it and fits (when none fits there, the fewest that divides it, marked as not fitting). When nothing fits, the layout with the least memory per accelerator is
    returned: the plan then says it does not fit instead of refusing to answer.
    """
    tps = [tp] if tp is not None else [1, 2, 4, 8]
    deepest = model.layers or PIPELINE_DEGREES[-1]
    pps = [pp] if pp is not None else [p for p in PIPELINE_DEGREES if p <= deepest]
    groups = sorted(((t, p) for t in tps for p in pps), key=lambda c: (c[0] * c[1], c[1]))
    candidates = [(z, r) for z in zero_stages for r in recomputes]
    fitting = {
        (z, r): [
            (t, p, dp)
            for t, p in groups
            if (dp := _smallest_dp(model, precision, z, t, p, micro_batch, r, capacity_bytes)) is not None
        ]
        for z, r in candidates
    }

    def fewest(candidate: tuple[int, str]) -> int:
        return min(t * p * dp for t, p, dp in fitting[candidate])

    if count is not None:
        for z, r in candidates:
            for t, p, dp in fitting[z, r]:
                if count % (t * p) == 0 and count // (t * p) >= dp:
                    return Layout(t, p, dp, z, r, fewest((z, r)))
    usable = [c for c in candidates if fitting[c]]
    pick = None
    if usable:  # the default settings when they fit, else the raised ones that need the fewest
        pick = (
            usable[0]
            if usable[0] == candidates[0]
            else min(usable, key=lambda c: (fewest(c), usable.index(c)))
        )
        options = [(t, p, dp) for t, p, dp in fitting[pick] if count is None or count % (t * p) == 0]
        if options:  # without a count the fewest; with one it fits only on more accelerators: say so
            best = min(options, key=lambda c: (c[0] * c[1] * c[2], c[0] * c[1]))
            return Layout(*best, *pick, fewest(pick))
    return _least_memory(
        model,
        precision,
        groups,
        candidates,
        micro_batch,
        capacity_bytes,
        count,
        fewest(pick) if pick else None,
    )


def _least_memory(
    model: ModelShape,
    precision: str,
    groups: Sequence[tuple[int, int]],
    candidates: Sequence[tuple[int, str]],
    micro_batch: int,
    capacity_bytes: float,
    count: int | None,
    fewest: int | None,
) -> Layout:
    """The layout with the least memory per accelerator at ``count`` (unlimited data parallelism without
    one, where it then uses a single model-parallel group)."""
    dividing = [(t, p) for t, p in groups if count is None or count % (t * p) == 0] or list(groups)

    def total(option: tuple[int, int, int, str]) -> float:
        t, p, z, r = option
        dp = count // (t * p) if count is not None and count % (t * p) == 0 else 10**12
        return training_memory(model, precision, z, t, p, max(dp, 1), micro_batch, r, capacity_bytes).total

    options = [(t, p, z, r) for z, r in candidates for t, p in dividing]
    t, p, z, r = min(options, key=lambda o: (total(o), o[0] * o[1]))
    return Layout(t, p, 1, z, r, fewest)


def _smallest_dp(
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
    floor = _floor(model, precision, zero_stage, tp, pp, micro_batch, recompute, capacity_bytes)
    if not floor.fits:
        return None
    if one.fits:
        return 1
    sharded = one.total - floor.total  # the part that shrinks as 1/dp
    return max(1, math.ceil(sharded / (capacity_bytes - floor.total) - 1e-9))


def _floor(
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


def fit_hint(
    model: ModelShape, memory: MemoryBreakdown, min_count: int | None, given: object, accelerator: str
) -> str:
    """One sentence on a layout that does not fit: the count that would, or what is left to try.

    ``given`` carries the spec's tp, pp, zero_stage, recompute and micro_batch (None: searched); only
    what was not already at its most memory-saving setting is suggested.
    """
    have = f"{memory.total / 1e9:.1f} GB per accelerator over the {memory.capacity / 1e9:.1f} GB usable"
    if min_count is not None:
        return (
            f"{model.name} does not fit at this count ({have}): it needs at least {min_count} accelerators."
        )
    options = []
    if getattr(given, "tp", None) is not None or getattr(given, "pp", None) is not None:
        options.append("drop --tp/--pp to search them, or raise them")
    if memory.zero_stage < 3:
        options.append("--zero-stage 3")
    if memory.recompute != "full":
        options.append("--recompute full")
    if getattr(given, "micro_batch", 1) > 1:
        options.append("--micro-batch 1")
    if model.has_shape:
        options.append("a shorter --seq-len")
    options.append("an accelerator with more memory than " + accelerator)
    layout = f"tp={memory.tp}, pp={memory.pp}, ZeRO {memory.zero_stage}, recompute {memory.recompute}"
    return f"{model.name} cannot fit at any count ({have} at best, {layout}); try {', '.join(options)}."


def _check_layout(zero_stage: int, tp: int, pp: int, dp: int, micro_batch: int, recompute: str) -> None:
    if zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"`zero_stage` must be 0, 1, 2 or 3. Got {zero_stage}.")
    for name, value in (("tp", tp), ("pp", pp), ("dp", dp), ("micro_batch", micro_batch)):
        if value < 1:
            raise ConfigError(f"`{name}` must be a positive integer. Got {value}.")
    if recompute not in RECOMPUTE:
        raise ConfigError(f"`recompute` must be one of {', '.join(RECOMPUTE)}. Got {recompute!r}.")
