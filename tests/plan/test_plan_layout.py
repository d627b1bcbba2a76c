"""Choosing tensor/pipeline degrees: the fewest accelerators that fit, honouring a fixed count."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dcloop.errors import ConfigError
from dcloop.plan import ServingSpec, TrainingSpec, get_preset, params_only, plan_serving, plan_training
from dcloop.plan._layout import choose_layout


def test_given_degrees_are_kept() -> None:
    model = get_preset("llama2-70b")
    layout = choose_layout(model, "bf16", [1], 8, 4, 1, ["selective"], 72e9, None)
    assert (layout.tp, layout.pp) == (8, 4) and layout.min_count == 32 * layout.dp


def test_unset_degrees_give_the_fewest_accelerators() -> None:
    plan = plan_training(TrainingSpec(model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb"))
    assert plan.count == plan.min_accelerators
    assert plan.memory.fits and (plan.memory.zero_stage, plan.memory.recompute) == (1, "selective")
    # nothing smaller fits with the default settings
    for tp in (1, 2, 4, 8):
        for pp in (1, 2, 4, 8, 16, 32, 64):
            layout = choose_layout(plan.spec.model, "bf16", [1], tp, pp, 1, ["selective"], 72e9, None)
            if layout.min_count is not None:
                assert layout.min_count >= plan.count


def test_fixed_count_uses_a_layout_that_divides_it() -> None:
    plan = plan_training(
        TrainingSpec(model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb", count=2048)
    )
    assert 2048 % (plan.memory.tp * plan.memory.pp) == 0
    assert plan.memory.dp * plan.memory.tp * plan.memory.pp == 2048


def test_a_count_too_small_to_fit_is_still_answered() -> None:
    spec = TrainingSpec(model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb", count=3)
    plan = plan_training(spec)
    free = plan_training(replace(spec, count=None))
    assert not plan.memory.fits and plan.min_accelerators == free.count == 32
    assert plan.accelerator_hours == pytest.approx(free.accelerator_hours)  # hours never depend on layout
    assert plan.fit_hint == (
        f"llama2-70b does not fit at this count ({plan.memory.total / 1e9:.1f} GB per accelerator over the "
        "72.0 GB usable): it needs at least 32 accelerators."
    )


def test_too_small_a_fixed_count_is_reported_not_hidden() -> None:
    spec = TrainingSpec(
        model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb", count=8, tp=8, pp=1
    )
    plan = plan_training(spec)
    assert not plan.memory.fits and plan.min_accelerators is not None and plan.min_accelerators > 8
    with pytest.raises(ConfigError, match=r"`count` \(12\) must be a multiple of tp x pp = 8 x 1 = 8"):
        plan_training(replace(spec, count=12))


def test_a_bare_parameter_count_searches_pipeline_stages() -> None:
    # 175B without a layer count used to be held at one pipeline stage and refused
    plan = plan_training(TrainingSpec(model=params_only(175e9), tokens=300e9, accelerator="h100-sxm"))
    assert plan.memory.fits and plan.memory.pp > 1 and plan.count == plan.min_accelerators
    steady_hours = 6 * 175e9 * 300e9 / (989e12 * 0.4) / 3600
    assert plan.steady_accelerator_hours == pytest.approx(steady_hours)
    assert plan.accelerator_hours == pytest.approx(steady_hours / 0.9)


def test_zero_stage_and_recomputation_are_raised_only_when_nothing_fits() -> None:
    big = params_only(1e12)
    searched = plan_training(TrainingSpec(model=big, tokens=1e12, accelerator="l4", tp=1, pp=1))
    assert searched.memory.fits and searched.memory.zero_stage == 3
    pinned = plan_training(TrainingSpec(model=big, tokens=1e12, accelerator="l4", tp=1, pp=1, zero_stage=1))
    assert not pinned.memory.fits and pinned.min_accelerators is None
    assert "drop --tp/--pp" in pinned.fit_hint and "--zero-stage 3" in pinned.fit_hint
    assert "--recompute full" in pinned.fit_hint
    assert pinned.accelerator_hours == pytest.approx(searched.accelerator_hours)
    llama = plan_training(TrainingSpec(model=get_preset("llama3.1-405b"), tokens=15.6e12, count=16384))
    assert llama.memory.fits and llama.memory.recompute == "full"  # selective needs 84 GB per H100


def test_the_hint_never_suggests_what_is_already_set() -> None:
    spec = TrainingSpec(
        model=get_preset("llama3.1-405b", seq_len=131072),
        tokens=1e12,
        accelerator="l4",
        zero_stage=3,
        recompute="full",
    )
    plan = plan_training(spec)  # one 128K-token sequence's checkpoints alone need 68 GB over tp=8
    assert not plan.memory.fits and plan.min_accelerators is None
    assert "cannot fit at any count" in plan.fit_hint
    assert "--recompute full" not in plan.fit_hint and "--zero-stage 3" not in plan.fit_hint
    assert "a shorter --seq-len" in plan.fit_hint


def test_serving_picks_the_replica_size_with_most_requests_per_accelerator() -> None:
    spec = ServingSpec(model=get_preset("llama3-70b"), accelerator="h100-sxm", target_rps=20, latency_s=10)
    plan = plan_serving(spec)
    assert plan.latency_s <= 10
    for tp in (2, 4, 8):
        try:
            other = plan_serving(ServingSpec(**{**spec.__dict__, "tp": tp}))
        except ConfigError:
            continue
        assert other.requests_per_s_per_replica / tp <= plan.requests_per_s_per_replica / plan.tp + 1e-12


def test_sizing_for_days_keeps_the_hint_to_what_the_user_set() -> None:
    from dcloop.plan import accelerators_for_days

    model = get_preset("llama3.1-405b", seq_len=131072)
    plan = accelerators_for_days(TrainingSpec(model=model, tokens=15.6e12, accelerator="l4"), days=30)
    assert not plan.memory.fits and plan.wall_s <= 30 * 86400
    assert "cannot fit at any count" in plan.fit_hint and "--tp" not in plan.fit_hint
