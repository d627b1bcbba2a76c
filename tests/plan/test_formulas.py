"""Every formula against a hand-computed example (numbers worked out in the comments)."""

from __future__ import annotations

import math

import pytest

from dcloop.errors import ConfigError
from dcloop.plan import (
    ImageServingSpec,
    ServingSpec,
    TrainingSpec,
    accelerators_for_days,
    get_preset,
    largest_compute_optimal_model,
    params_only,
    plan_image_serving,
    plan_serving,
    plan_training,
    training_memory,
    transformer,
)
from dcloop.plan._energy import Site
from dcloop.plan._memory import activation_bytes_per_layer, min_data_parallel
from dcloop.plan._models import train_flops_per_token
from dcloop.plan._serving import kv_cache_bytes_per_token
from dcloop.plan._training import hardware_flops_per_token

GPT = transformer("t", layers=2, hidden=64, heads=4, seq_len=128, vocab=1000)


def test_parameter_counts() -> None:
    # per layer 4d^2 attention + 8d^2 MLP = 12 * 64^2 = 49,152; two layers plus 1000 x 64 tied embeddings
    assert GPT.params == 2 * 49152 + 64000
    gqa = transformer(
        "g", 1, 64, 8, 16, vocab=100, kv_heads=2, ffn=128, gated_mlp=True, tied_embeddings=False
    )
    # attention 2*64^2 + 2*64*(2 kv heads * 8 dims) = 10,240; gated MLP 3*64*128 = 24,576; embeddings 2*100*64
    assert gqa.params == 10240 + 24576 + 12800
    assert get_preset("gpt3-175b").params == pytest.approx(174.6e9, rel=0.001)
    assert get_preset("llama2-70b").params == pytest.approx(68.98e9, rel=0.001)
    assert get_preset("bloom-176b").params == pytest.approx(176.2e9, rel=0.001)


def test_flops_per_token_model_and_hardware() -> None:
    # 6N = 973,824; attention 12 * L * s * d = 12 * 2 * 128 * 64 = 196,608
    assert train_flops_per_token(GPT) == 973824 + 196608
    # full recomputation adds a forward pass: 2N + 4*L*s*d = 324,608 + 65,536
    assert hardware_flops_per_token(GPT, "full") == 1170432 + 324608 + 65536
    assert hardware_flops_per_token(GPT, "selective") == 1170432 + 65536
    assert hardware_flops_per_token(GPT, "none") == 1170432
    assert train_flops_per_token(params_only(1e9)) == 6e9


def test_korthikanti_activations() -> None:
    s, b, h, a = 128, 2, 64, 4
    # Korthikanti et al. 2022, eq. (1): s*b*h*(34 + 5*a*s/h) bytes per layer
    assert activation_bytes_per_layer(GPT, b, 1, "none", "bf16") == s * b * h * (34 + 5 * a * s / h)
    assert activation_bytes_per_layer(GPT, b, 2, "none", "bf16") == s * b * h * (34 + 5 * a * s / h) / 2
    assert activation_bytes_per_layer(GPT, b, 1, "selective", "bf16") == s * b * h * 34
    assert activation_bytes_per_layer(GPT, b, 1, "full", "bf16") == 2 * s * b * h
    assert activation_bytes_per_layer(GPT, b, 1, "full", "fp32") == 4 * s * b * h
    gqa = transformer("g", 1, 64, 8, 128, kv_heads=2, ffn=128, gated_mlp=True)
    # attention 7 + 4 * (2/8) = 8, gated MLP 3 + 6 * 128/64 = 15, layer norms 4: 27
    assert activation_bytes_per_layer(gqa, 1, 1, "selective", "bf16") == 128 * 64 * 27


def test_zero_stages_and_min_data_parallel() -> None:
    model = params_only(1e9)
    totals = [training_memory(model, "bf16", z, 1, 1, 8, 1, "none", 80e9).total / 1e9 for z in range(4)]
    # 2 + 2 + 12 bytes; stage 1 shards the 12, stage 2 also the 2 of gradients, stage 3 everything
    assert totals == pytest.approx([16, 2 + 2 + 1.5, 2 + 0.25 + 1.5, 2.0])
    assert training_memory(model, "fp32", 0, 2, 2, 1, 1, "none", 80e9).total == pytest.approx(16e9 / 4)
    assert min_data_parallel(model, "bf16", 3, 1, 1, 1, "none", 1e9) == 16  # 16 GB / dp <= 1 GB
    assert min_data_parallel(model, "bf16", 1, 1, 1, 1, "none", 5e9) == 12  # 4 + 12/dp <= 5
    with pytest.raises(ConfigError, match=r"16.0 GB per accelerator .* 6.0 GB over the 10.0 GB usable"):
        min_data_parallel(model, "bf16", 0, 1, 1, 1, "none", 10e9)


def _spec(**kw) -> TrainingSpec:
    base = dict(
        model=params_only(1e9),
        tokens=1e10,
        accelerator="a100-80gb",
        count=8,
        pue=1.5,
        carbon_kg_per_kwh=0.5,
        price_per_kwh=0.2,
        accelerator_hour_usd=2.0,
    )
    return TrainingSpec(**{**base, **kw})


def test_training_time_energy_cost_from_utilization() -> None:
    plan = plan_training(_spec(utilization=0.5, goodput=0.8))
    steady = 6e19 / (8 * 312e12 * 0.5)  # 48,076.9 s of training
    wall = steady / 0.8  # 60,096.2 s with restarts, failures and evaluation
    assert plan.model_flops == 6e19
    assert plan.steady_wall_s == pytest.approx(steady)
    assert plan.wall_s == pytest.approx(wall)
    assert plan.steady_accelerator_hours == pytest.approx(8 * steady / 3600)  # 106.84 h
    assert plan.accelerator_hours == pytest.approx(8 * wall / 3600)  # 133.55 h: energy is charged on these
    assert plan.energy_it_kwh == pytest.approx(8 * wall / 3600 * 0.4)  # 400 W TDP
    assert plan.energy_facility_kwh == pytest.approx(plan.energy_it_kwh * 1.5)
    assert plan.co2_kg == pytest.approx(plan.energy_facility_kwh * 0.5)
    assert plan.cost_usd == pytest.approx(plan.energy_facility_kwh * 0.2 + plan.accelerator_hours * 2.0)
    assert plan.mfu == pytest.approx(0.5)  # MFU is a steady-state figure
    summary = plan.summary()
    assert summary["steady_wall_days"] == pytest.approx(steady / 86400)
    assert summary["wall_days"] == pytest.approx(wall / 86400)
    assert summary["cost_covers"].startswith("rental at $2/accelerator-hour + electricity at $0.2/kWh")
    default = plan_training(_spec(utilization=0.5))
    assert default.spec.run_goodput == 0.9 and default.wall_s == pytest.approx(steady / 0.9)
    free = plan_training(_spec(utilization=0.5, accelerator_hour_usd=0.0)).summary()["cost_covers"]
    assert free.startswith("electricity at $0.2/kWh x PUE only")


def test_training_derives_utilization_from_what_was_measured() -> None:
    by_rate = plan_training(_spec(tokens_per_s=1000))
    assert by_rate.steady_wall_s == pytest.approx(1e10 / (8 * 1000))
    assert by_rate.mfu == pytest.approx(6e9 * 1000 / 312e12)
    # a finished run's hours are whole-run: the steady state is the goodput share of them
    by_hours = plan_training(_spec(accelerator_hours=1000, goodput=0.8))
    assert by_hours.wall_s == pytest.approx(1000 * 3600 / 8)
    assert by_hours.accelerator_hours == pytest.approx(1000)
    assert by_hours.mfu == pytest.approx(6e19 / (800 * 3600 * 312e12))
    by_wall = plan_training(_spec(wall_days=2))
    assert by_wall.accelerator_hours == pytest.approx(8 * 48)
    by_flops = plan_training(_spec(model_flops_per_s=156e12))
    assert by_flops.mfu == pytest.approx(0.5)
    assert plan_training(_spec(count=None)).count == by_rate.min_accelerators == 1


def test_kv_cache_with_grouped_query_attention() -> None:
    # 2 (K, V) * 80 layers * 8 kv heads * 128 dims * 2 bytes
    assert kv_cache_bytes_per_token(get_preset("llama2-70b"), 2) == 327680
    # GPT-3 has full multi-head attention: 96 kv heads
    assert kv_cache_bytes_per_token(get_preset("gpt3-175b"), 2) == 2 * 96 * 96 * 128 * 2


def test_serving_decode_is_bandwidth_bound_at_batch_one() -> None:
    model = get_preset("llama2-7b")
    spec = ServingSpec(
        model=model,
        accelerator="h100-sxm",
        prompt_tokens=100,
        output_tokens=100,
        batch=1,
        tp=1,
        target_rps=1.0,
        compute_utilization=1.0,
        bandwidth_utilization=1.0,
        pue=1.0,
    )
    plan = plan_serving(spec)
    kv = 2 * 32 * 32 * 128 * 2
    step = (model.params * 2 + kv * 150) / 3350e9  # weights + one sequence's cache at mean context 150
    assert plan.decode_bound == "memory"
    assert plan.decode_step_s == pytest.approx(step)
    prefill = (2 * model.params * 100 + 2 * 32 * 100 * 100 * 4096) / 989e12
    assert plan.prefill_s == pytest.approx(prefill)
    assert plan.latency_s == pytest.approx(prefill + 100 * step)
    assert plan.replicas == math.ceil(1.0 / (1 / plan.latency_s))
    hourly_kwh = plan.accelerators * 0.7
    assert plan.energy_kwh_per_million_tokens == pytest.approx(hourly_kwh / (1.0 * 200 * 3600 / 1e6))


def test_image_serving_from_measured_throughput() -> None:
    spec = ImageServingSpec(images_per_s=1000, target_rps=2500, accelerator="l4", max_load=0.8, pue=1.5)
    plan = plan_image_serving(spec)
    assert plan.accelerators == 4  # ceil(2500 / 800)
    assert plan.load == pytest.approx(2500 / 4000)
    # 4 x 72 W x 1.5 = 0.432 kWh per hour for 9 M images
    assert plan.energy_kwh_per_million_images == pytest.approx(0.432 / 9)


def test_inverse_questions() -> None:
    best = largest_compute_optimal_model("h100-sxm", 1000, 10, utilization=0.4, goodput=1.0)
    compute = 1000 * 989e12 * 0.4 * 10 * 86400
    assert best.compute_flops == pytest.approx(compute)
    assert best.params == pytest.approx(math.sqrt(compute / 120))  # C = 6 * N * 20N
    assert best.tokens == pytest.approx(20 * best.params)
    # 1,000 x 10 days = 240,000 accelerator-hours at 700 W, PUE 1.2, 0.4 kg/kWh, $0.1/kWh, $2/hour
    site = Site(power_w=None, pue=1.2, carbon_kg_per_kwh=0.4, price_per_kwh=0.1, accelerator_hour_usd=2.0)
    costed = largest_compute_optimal_model("h100-sxm", 1000, 10, utilization=0.4, site=site, goodput=1.0)
    assert costed.accelerator_hours == 240_000 and costed.power_w == 700
    assert costed.facility_kwh == pytest.approx(240_000 * 0.7 * 1.2)
    assert costed.co2_kg == pytest.approx(240_000 * 0.7 * 1.2 * 0.4)
    summary = costed.summary()  # the units of `plan train`: MWh and t
    assert summary["energy_facility_mwh"] == pytest.approx(240 * 0.7 * 1.2)
    assert summary["co2_t"] == pytest.approx(240 * 0.7 * 1.2 * 0.4) and "co2_kg" not in summary
    assert costed.cost_usd == pytest.approx(240_000 * 0.7 * 1.2 * 0.1 + 240_000 * 2.0)
    with pytest.raises(ConfigError, match=r"`pue` must be at least 1"):
        largest_compute_optimal_model("h100-sxm", 1000, 10, site=Site(pue=0.5))
    plan = accelerators_for_days(
        TrainingSpec(model=params_only(1e9), tokens=1e12, accelerator="a100-80gb", utilization=0.5), days=1
    )
    assert plan.count == math.ceil(6e21 / 156e12 / 86400 / 0.9)  # 494.6 -> 495 with goodput 0.9
    assert plan.wall_s <= 86400
    whole_days = largest_compute_optimal_model("h100-sxm", 1000, 10, utilization=0.4, goodput=0.9)
    assert whole_days.compute_flops == pytest.approx(0.9 * compute)  # a tenth of the days does not train


def test_serving_a_mixture_of_experts_computes_with_its_active_parameters() -> None:
    from dataclasses import replace

    dense = ServingSpec(
        model=get_preset("llama2-70b"), accelerator="h100-sxm", tp=4, batch=8, prompt_tokens=1000
    )
    moe = replace(dense, model=replace(dense.model, active_params=dense.model.params / 4))
    a, b = plan_serving(dense), plan_serving(moe)
    assert b.weights_gb == a.weights_gb  # every expert is held in memory
    attention = 2 * 80 * 1000 * 1000 * 8192  # the causal attention scores do not shrink
    assert (b.prefill_s * 4 * 989e12 * 0.5 - attention) == pytest.approx(
        (a.prefill_s * 4 * 989e12 * 0.5 - attention) / 4
    )
