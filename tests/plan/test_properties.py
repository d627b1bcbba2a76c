"""Properties that hold for any input: scaling out, sharding, PUE."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.plan import TrainingSpec, get_preset, params_only, plan_training, training_memory

PRESET_NAMES = ["gpt3-175b", "llama2-7b", "llama2-70b", "llama3-8b", "bert-large", "bloom-176b"]


@settings(max_examples=40, deadline=None)
@given(
    params=st.floats(1e8, 1e11),
    count=st.integers(1, 4096),
    extra=st.integers(1, 4096),
    utilization=st.floats(0.05, 1.0),
)
def test_more_accelerators_never_lengthen_wall_time(
    params: float, count: int, extra: int, utilization: float
) -> None:
    spec = TrainingSpec(
        model=params_only(params), tokens=1e12, accelerator="h100-sxm", utilization=utilization, zero_stage=3
    )
    small = plan_training(replace(spec, count=count))
    large = plan_training(replace(spec, count=count + extra))
    assert large.wall_s <= small.wall_s
    assert large.accelerator_hours == pytest.approx(small.accelerator_hours)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(PRESET_NAMES),
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.sampled_from([1, 2, 4]),
    dp=st.integers(1, 512),
    recompute=st.sampled_from(["none", "selective", "full"]),
    precision=st.sampled_from(["bf16", "fp32"]),
)
def test_memory_never_grows_with_zero_stage(
    name: str, tp: int, pp: int, dp: int, recompute: str, precision: str
) -> None:
    model = get_preset(name)
    totals = [training_memory(model, precision, z, tp, pp, dp, 1, recompute, 80e9).total for z in range(4)]
    assert all(later <= earlier for earlier, later in itertools.pairwise(totals))


@settings(max_examples=40, deadline=None)
@given(pue=st.floats(1.0, 3.0), factor=st.floats(1.0, 3.0), hours=st.floats(1.0, 1e7))
def test_energy_scales_linearly_with_pue(pue: float, factor: float, hours: float) -> None:
    spec = TrainingSpec(
        model=params_only(1e9),
        tokens=1e10,
        accelerator="a100-80gb",
        count=8,
        accelerator_hours=hours,
        pue=pue,
    )
    base = plan_training(spec)
    scaled = plan_training(replace(spec, pue=min(pue * factor, 10.0)))
    ratio = min(pue * factor, 10.0) / pue
    assert scaled.energy_facility_kwh == pytest.approx(base.energy_facility_kwh * ratio)
    assert scaled.co2_kg == pytest.approx(base.co2_kg * ratio)
    assert scaled.energy_it_kwh == pytest.approx(base.energy_it_kwh)


@settings(max_examples=60, deadline=None)
@given(
    params=st.floats(1e8, 3e12),
    accelerator=st.sampled_from(
        ["v100-sxm2-32gb", "a100-80gb", "h100-sxm", "h800", "l4", "tpu-v2", "tpu-v4"]
    ),
    count=st.one_of(st.none(), st.integers(1, 20000)),
    zero_stage=st.one_of(st.none(), st.integers(0, 3)),
)
def test_every_question_is_answered_and_hours_never_depend_on_the_layout(
    params: float, accelerator: str, count: int | None, zero_stage: int | None
) -> None:
    precision = "fp16" if accelerator == "v100-sxm2-32gb" else "bf16"
    spec = TrainingSpec(
        model=params_only(params), tokens=1e12, accelerator=accelerator, count=count, zero_stage=zero_stage
    )
    spec = replace(spec, precision=precision)
    plan = plan_training(spec)
    steady_hours = 6 * params * 1e12 / (plan.peak_flops_per_s * 0.4) / 3600
    assert plan.accelerator_hours == pytest.approx(steady_hours / 0.9)
    assert plan.memory.fits or plan.fit_hint
    if plan.min_accelerators is not None and count is None:
        assert plan.count == plan.min_accelerators and plan.memory.fits
    if plan.min_accelerators is not None:  # the count it names is one that fits
        assert plan_training(replace(spec, count=plan.min_accelerators)).memory.fits
