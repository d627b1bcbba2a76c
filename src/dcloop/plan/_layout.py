"""Choosing a parallel layout: tensor and pipeline degrees, ZeRO stage and recomputation that fit.

Memory per layout comes from ``memory.py``. The search never refuses: when nothing fits, the layout with
the least memory per accelerator is returned and the plan says so, with ``fit_hint`` naming what is
left to try, because time, energy and FLOPs do not depend on the layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dcloop.plan._memory import MemoryBreakdown, smallest_data_parallel, training_memory
from dcloop.plan._models import ModelShape


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
            if (dp := smallest_data_parallel(model, precision, z, t, p, micro_batch, r, capacity_bytes))
            is not None
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
    count = memory.tp * memory.pp * memory.dp
    where = f"{layout}: {have} on {count} accelerators"
    return f"{model.name} cannot fit at any count ({where}); try {', '.join(options)}."
