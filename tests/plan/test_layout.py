"""Choosing tensor/pipeline degrees: the fewest accelerators that fit, honouring a fixed count."""

from __future__ import annotations

import pytest

from dcloop.errors import ConfigError
from dcloop.plan import ServingSpec, TrainingSpec, get_preset, plan_serving, plan_training
from dcloop.plan.memory import choose_layout


def test_given_degrees_are_kept() -> None:
    model = get_preset("llama2-70b")
    tp, pp, dp, fewest = choose_layout(model, "bf16", 1, 8, 4, 1, "selective", 72e9, None)
    assert (tp, pp) == (8, 4) and fewest == 32 * dp


def test_unset_degrees_give_the_fewest_accelerators() -> None:
    plan = plan_training(TrainingSpec(model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb"))
    assert plan.count == plan.min_accelerators
    assert plan.memory.fits
    # nothing smaller fits: every layout with fewer accelerators exceeds the usable memory
    for tp in (1, 2, 4, 8):
        for pp in (1, 2, 4, 8, 16, 32, 64):
            try:
                t, p, dp, _ = choose_layout(plan.spec.model, "bf16", 1, tp, pp, 1, "selective", 72e9, None)
            except ConfigError:
                continue
            assert t * p * dp >= plan.count


def test_fixed_count_uses_a_layout_that_divides_it() -> None:
    plan = plan_training(
        TrainingSpec(model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb", count=2048)
    )
    assert 2048 % (plan.memory.tp * plan.memory.pp) == 0
    assert plan.memory.dp * plan.memory.tp * plan.memory.pp == 2048
    with pytest.raises(
        ConfigError, match=r"No layout that fits llama2-70b divides count 3; layouts that fit: tp="
    ):
        plan_training(
            TrainingSpec(model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb", count=3)
        )


def test_too_small_a_fixed_count_is_reported_not_hidden() -> None:
    spec = TrainingSpec(
        model=get_preset("llama2-70b"), tokens=2e12, accelerator="a100-80gb", count=8, tp=8, pp=1
    )
    plan = plan_training(spec)
    assert not plan.memory.fits and plan.min_accelerators > 8


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
