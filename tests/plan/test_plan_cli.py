"""`dcloop plan ...` through the real entry point: JSON figures, tables, reports, and one-line errors."""

from __future__ import annotations

from json import loads as as_json
from pathlib import Path

import pytest

TRAIN_KEYS = {
    "model_flops",
    "hardware_flops",
    "wall_days",
    "accelerator_hours",
    "energy_it_mwh",
    "energy_facility_mwh",
    "co2_t",
    "cost_usd",
    "memory_per_accelerator_gb",
    "min_accelerators",
}


def test_train_json_without_a_workspace(cli) -> None:
    code, out, _ = cli(
        "plan",
        "train",
        "--preset",
        "llama2-70b",
        "--tokens",
        "2T",
        "-a",
        "a100-80gb",
        "-n",
        "2048",
        "--tp",
        "8",
        "--pp",
        "4",
        "--utilization",
        "0.5",
        "--power-w",
        "400",
        "--pue",
        "1.1",
        "--carbon",
        "0.4",
        "--price",
        "0.1",
        "--format",
        "json",
    )
    assert code == 0
    data = as_json(out)
    assert set(data) >= TRAIN_KEYS
    assert {"weights", "gradients", "optimizer", "activations", "total"} <= set(
        data["memory_per_accelerator_gb"]
    )
    assert data["mfu"] == pytest.approx(0.5)
    assert data["energy_facility_mwh"] == pytest.approx(data["accelerator_hours"] * 0.4 * 1.1 / 1000)
    assert data["co2_t"] == pytest.approx(data["energy_facility_mwh"] * 0.4)


def test_train_spec_file_report_and_what_if(cli, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "params: 7B\ntokens: 1T\naccelerator: h100-sxm\ncount: 64\nzero_stage: 3\n", encoding="utf-8"
    )
    report = tmp_path / "plan.html"
    code, out, err = cli(
        "plan",
        "train",
        "--spec",
        str(spec),
        "--count",
        "128",
        "--compare",
        "a100-80gb,h100-sxm",
        "--counts",
        "64,128",
        "--report",
        str(report),
        "--format",
        "json",
    )
    assert code == 0, err
    data = as_json(out)
    assert data["count"] == 128  # the flag overrides the file
    assert len(data["what_if"]) == 4
    a100 = [r for r in data["what_if"] if r["accelerator"] == "a100-80gb"]
    assert a100[1]["wall_days"] == pytest.approx(a100[0]["wall_days"] / 2)
    page = report.read_text(encoding="utf-8")
    assert "What if" in page and "data:image/png;base64," in page


def test_serve_report_sweeps_the_batch_up_to_the_plan(cli, tmp_path: Path) -> None:
    from dcloop.plan import plan_serving
    from dcloop.plan._models import get_preset
    from dcloop.plan._report import batch_sweep
    from dcloop.plan._serving import ServingSpec

    report = tmp_path / "serve.html"
    args = ["--preset", "llama3-8b", "-a", "h100-sxm", "--target-rps", "5"]
    code, out, err = cli("plan", "serve", *args, "--report", str(report), "--format", "json")
    assert code == 0, err
    data = as_json(out)
    page = report.read_text(encoding="utf-8")
    assert "Batch size" in page and "data:image/png;base64," in page
    assert f"<td>{data['batch']}</td>" in page
    plan = plan_serving(ServingSpec(model=get_preset("llama3-8b"), accelerator="h100-sxm", target_rps=5))
    sweep = batch_sweep(plan)
    assert [p.batch for p in sweep][-1] == plan.batch == data["batch"] and sweep[0].batch == 1
    assert all(p.tp == plan.tp for p in sweep)
    tokens = [p.decode_tokens_per_s_per_accelerator for p in sweep]
    assert tokens == sorted(tokens), "a larger batch never decodes fewer tokens per accelerator"


def test_workspace_settings_are_used_when_found(cli, tmp_path: Path) -> None:
    (tmp_path / "dcloop.yaml").write_text(
        "energy:\n  pue: 2.0\nplan:\n  hardware:\n  - {name: my-npu, tflops: {bf16: 100}, memory_gb: 64,"
        " memory_bw_gbs: 1000, tdp_w: 500, source: vendor sheet}\n",
        encoding="utf-8",
    )
    code, out, err = cli(
        "plan", "train", "--params", "1B", "--tokens", "10B", "-a", "my-npu", "-n", "4", "--format", "json"
    )
    assert code == 0, err
    data = as_json(out)
    assert data["energy_facility_mwh"] == pytest.approx(2 * data["energy_it_mwh"])
    assert data["power_w"] == 500


def test_other_commands_print(cli) -> None:
    code, out, _ = cli("plan", "hardware", "--format", "json")
    assert code == 0 and {r["name"] for r in as_json(out)} >= {"h100-sxm", "tpu-v5p"}
    code, out, _ = cli("plan", "validate")
    assert code == 0 and "gpt3-175b" in out and "NO" not in out
    code, out, _ = cli(
        "plan", "serve", "--preset", "llama3-70b", "-a", "h100-sxm", "--target-rps", "20", "--format", "json"
    )
    serve = as_json(out)
    assert code == 0 and serve["accelerators"] == serve["replicas"] * serve["tp"]
    code, out, _ = cli(
        "plan",
        "serve-image",
        "--images-per-s",
        "4000",
        "--target-rps",
        "10000",
        "-a",
        "l4",
        "--format",
        "json",
    )
    assert code == 0 and as_json(out)["accelerators"] == 4  # ceil(10000 / (4000 * 0.8))
    code, out, _ = cli("plan", "fit", "--days", "30", "-a", "h100-sxm", "-n", "1024", "--format", "json")
    # sqrt(C / 120) with 90% of the 30 days training (default goodput)
    assert code == 0 and as_json(out)["params"] == pytest.approx(88.7e9, rel=0.01)
    code, out, _ = cli(
        "plan",
        "fit",
        "--days",
        "30",
        "--preset",
        "llama3-8b",
        "--tokens",
        "15T",
        "-a",
        "h100-sxm",
        "--format",
        "json",
    )
    assert code == 0 and as_json(out)["wall_days"] <= 30


def test_fit_largest_model_reads_the_spec_file(cli, tmp_path: Path) -> None:
    spec = tmp_path / "cluster.yaml"
    spec.write_text("accelerator: a100-80gb\ncount: 1K\nutilization: 0.4\n", encoding="utf-8")
    code, out, _ = cli("plan", "fit", "--days", "30", "--spec", str(spec), "--format", "json")
    data = as_json(out)
    assert code == 0 and data["accelerator"] == "a100-80gb" and data["count"] == 1000
    code, out, _ = cli(
        "plan", "fit", "--days", "30", "--spec", str(spec), "-a", "h100-sxm", "--format", "json"
    )
    assert code == 0 and as_json(out)["accelerator"] == "h100-sxm"  # a flag overrides the file


def test_fit_largest_model_costs_its_hours_and_refuses_a_layout(cli) -> None:
    args = ["plan", "fit", "--days", "30", "-a", "h100-sxm", "-n", "1024"]
    code, out, _ = cli(*args, "--carbon", "0.4", "--pue", "1.2", "--power-w", "500", "--format", "json")
    data = as_json(out)
    assert code == 0 and data["accelerator_hours"] == 1024 * 30 * 24
    assert data["co2_t"] == pytest.approx(1024 * 30 * 24 * 0.5 * 1.2 * 0.4 / 1000)  # same units as train
    code, _, err = cli(*args, "--tp", "8")
    assert code == 2 and "--tp: a parallel layout needs a given model" in err and "\n" not in err.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--params", "0", "--tokens", "1T"], r"`params` must be positive. Got 0"),
        (["train", "--params", "7B", "--tokens", "-5"], r"`tokens` must be positive. Got -5"),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--utilization", "1.5"],
            r"`utilization` must be in \(0, 1\]. Got 1.5",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--utilization", "0"],
            r"`utilization` must be in \(0, 1\]. Got 0",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "-a", "h100-sxn"],
            r"Unknown accelerator 'h100-sxn'.*Did you mean 'h100-sxm'",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--utilization", "45"],
            r"`utilization` must be in \(0, 1\]. Got 45. Did you mean 0.45\?",
        ),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--goodput", "90"],
            r"`goodput` must be in \(0, 1\]. Got 90. Did you mean 0.9\?",
        ),
        (
            ["fit", "--days", "30", "-n", "64", "--mfu", "40"],
            r"`utilization` must be in \(0, 1\]. Got 40. Did you mean 0.4\?",
        ),
        (
            ["train", "--params", "7B", "--active-params", "8B", "--tokens", "1T"],
            r"`active_params` must be positive and at most the 7e\+09 parameters. Got 8e\+09",
        ),
        (
            [
                "train",
                "--params",
                "7B",
                "--tokens",
                "1T",
                "-n",
                "8",
                "--utilization",
                "0.4",
                "--wall-days",
                "3",
            ],
            r"contradict each other. Got utilization=0.4, wall_days=3",
        ),
        (
            ["fit", "--days", "30", "--preset", "llama2-7b", "--tokens", "1T", "-n", "64"],
            r"target of 30 days and a fixed count of 64 contradict",
        ),
        (["train", "--preset", "gpt-5", "--tokens", "1T"], r"Unknown model preset 'gpt-5'"),
        (
            ["serve", "--preset", "llama2-70b", "-a", "l4", "--tp", "1"],
            r"needs .* GB .* give 21.6 GB usable. Raise --tp",
        ),
        (["serve", "--preset", "llama2-70b", "--latency-s", "0.01"], r"Cannot meet latency 0.01 s"),
        (
            ["serve-image", "--images-per-s", "-1", "--target-rps", "5", "-a", "l4"],
            r"`images_per_s` must be positive",
        ),
        (["train", "--params", "7B", "--tokens", "lots"], r"`tokens` must be a number such as 70B"),
        (["fit", "--days", "3"], r"Give a model with --tokens .* or --count"),
        (
            ["train", "--params", "7B", "--tokens", "1T", "--tp", "0"],
            r"`tp` must be a positive integer. Got 0",
        ),
        (["train", "--params", "7B", "--tokens", "1T", "--pue", "0.5"], r"`pue` must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(cli, args: list[str], message: str) -> None:
    code, _, err = cli("plan", *args)
    assert code != 0
    assert err.strip().count("\n") == 0, err
    assert __import__("re").search(message, err), err


def test_planner_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, dcloop.plan, dcloop.plan._spec; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


PLAIN_QUESTIONS = {
    "gpt3-flops": ["--params", "175B", "--tokens", "300B"],
    "gpt3-preset": [
        "--preset",
        "gpt3-175b",
        "--tokens",
        "300B",
        "-a",
        "v100-sxm2-32gb",
        "--precision",
        "fp16",
    ],
    "bloom": ["--params", "176B", "--tokens", "366B", "-a", "a100-80gb"],
    "gshard-600b": ["--params", "600B", "--tokens", "1T", "-a", "tpu-v3"],
    "switch-1.6t": ["--params", "1.6T", "--tokens", "500B", "-a", "tpu-v3"],
    "lamda": ["--params", "137B", "--tokens", "168B", "-a", "tpu-v3"],
    "llama3.1-405b": ["--preset", "llama3.1-405b", "--tokens", "15.6T"],
    "llama3.1-405b-params": ["--params", "405B", "--tokens", "15.6T", "-n", "16384"],
    "deepseek-v3": ["--params", "671B", "--active-params", "37B", "--tokens", "14.8T", "-a", "h800"],
}


@pytest.mark.parametrize("args", PLAIN_QUESTIONS.values(), ids=PLAIN_QUESTIONS.keys())
def test_plain_questions_are_answered_without_layout_flags(cli, args: list[str]) -> None:
    code, out, err = cli("plan", "train", *args, "--format", "json")
    assert code == 0, err
    data = as_json(out)
    for key in (
        "model_flops",
        "steady_wall_days",
        "wall_days",
        "accelerator_hours",
        "energy_facility_mwh",
        "co2_t",
    ):
        assert data[key] > 0, key
    assert data["wall_days"] == pytest.approx(data["steady_wall_days"] / data["goodput"])
    if "--params" in args:  # no shape: 6 x active parameters x tokens
        assert data["model_flops"] == pytest.approx(6 * data["active_params"] * data["tokens"])
    assert data["fits"] or data["fit_hint"]


def test_what_does_not_fit_is_answered_with_what_would(cli) -> None:
    args = ["plan", "train", "--preset", "llama3.1-405b", "--tokens", "1T", "-a", "l4", "--zero-stage", "0"]
    code, out, err = cli(*args, "--recompute", "selective")
    assert code == 0, err
    err = " ".join(err.split())  # the note may wrap at the terminal width
    assert "does not fit: llama3.1-405b cannot fit at any count" in err and "--recompute full" in err
    code, out, _ = cli(*args, "--recompute", "full", "--seq-len", "131072", "--format", "json")
    data = as_json(out)
    assert code == 0 and data["fits"] is False and data["memory_per_accelerator_gb"]["total"] > 21.6
    assert "--recompute full" not in data["fit_hint"] and data["energy_facility_mwh"] > 0


def test_mixture_of_experts_and_impossible_utilization(cli) -> None:
    # DeepSeek-V3: 2.788M H800-hours for 14.8T tokens; 671B parameters in all, 37B active per token
    args = ["plan", "train", "--params", "671B", "--tokens", "14.8T", "-a", "h800", "-n", "2048"]
    args += ["--accelerator-hours", "2.788M", "--precision", "fp8", "--goodput", "1"]
    code, out, _ = cli(*args, "--format", "json")
    dense = as_json(out)
    assert code == 0 and dense["mfu"] > 1
    assert "exceeds 1" in dense["warnings"][0] and "--active-params" in dense["warnings"][0]
    code, _, err = cli(*args)
    assert "warning: implied MFU" in err
    code, out, _ = cli(*args, "--active-params", "37B", "--format", "json")
    moe = as_json(out)
    assert moe["mfu"] == pytest.approx(6 * 37e9 * 14.8e12 / (2.788e6 * 3600 * 1979e12))
    assert moe["warnings"] == [] and moe["memory_per_accelerator_gb"] == dense["memory_per_accelerator_gb"]


def test_the_flop_convention_is_stated_and_mfu_is_an_alias(cli) -> None:
    # OPT-175B: 147 TFLOP/s per A100 counted with recomputation (8N per token), 33 days published
    base = ["plan", "train", "--params", "175B", "--tokens", "300B", "-a", "a100-80gb", "-n", "992"]
    base += ["--hardware-flops-per-s", "147T", "--format", "json"]
    code, out, _ = cli(*base)
    six = as_json(out)
    assert code == 0 and six["steady_wall_days"] == pytest.approx(25.0, abs=0.1)
    assert "6·N per token" in six["flop_convention"] and "--recompute full" in six["warnings"][0]
    code, out, _ = cli(*base, "--recompute", "full")
    eight = as_json(out)
    assert eight["steady_wall_days"] == pytest.approx(33.3, abs=0.1) and eight["warnings"] == []
    assert "(2·N: 8·N)" in eight["flop_convention"]
    args = ["plan", "train", "--params", "7B", "--tokens", "1T", "--format", "json"]
    assert as_json(cli(*args, "--mfu", "0.3")[1]) == as_json(cli(*args, "--utilization", "0.3")[1])


def test_compare_without_a_count_headlines_no_count(cli) -> None:
    args = ["plan", "train", "--params", "70B", "--tokens", "2T", "--compare", "a100-80gb,h100-sxm"]
    code, out, _ = cli(*args, "--format", "json")
    data = as_json(out)
    assert code == 0 and "count" not in data and "fewest that fit" in data["what_if_counts"]
    own = {r["accelerator"]: r["count"] for r in reversed(data["what_if"])}  # the first row of each
    code, out, _ = cli(
        "plan", "train", "--params", "70B", "--tokens", "2T", "-a", "a100-80gb", "--format", "json"
    )
    assert own["a100-80gb"] == as_json(out)["count"]  # each accelerator at its own fewest
    code, out, _ = cli(*args)
    assert code == 0 and "training plan" not in out and "what if" in out


def test_fit_takes_zero_stage_recompute_and_goodput(cli) -> None:
    args = ["plan", "fit", "--days", "30", "--params", "70B", "--tokens", "2T", "-a", "h100-sxm"]
    code, out, err = cli(
        *args, "--zero-stage", "3", "--recompute", "full", "--goodput", "0.8", "--format", "json"
    )
    data = as_json(out)
    assert code == 0, err
    assert data["layout"]["zero_stage"] == 3 and data["goodput"] == 0.8 and data["wall_days"] <= 30


def test_serving_cost_says_what_it_covers(cli) -> None:
    args = [
        "plan",
        "serve",
        "--preset",
        "llama2-70b",
        "-a",
        "h100-sxm",
        "--target-rps",
        "2",
        "--format",
        "json",
    ]
    code, out, _ = cli(*args)
    assert code == 0 and as_json(out)["cost_covers"].startswith("electricity at $0.15/kWh x PUE only")
    code, out, _ = cli(*args, "--accelerator-hour-usd", "2.5")
    assert "rental at $2.5/accelerator-hour" in as_json(out)["cost_covers"]
