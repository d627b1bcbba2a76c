"""`dcloop plan ...` through the real entry point: JSON figures, tables, reports, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import as_json

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
    from dcloop.plan.models import get_preset
    from dcloop.plan.report import batch_sweep
    from dcloop.plan.serving import ServingSpec

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
    assert code == 0 and as_json(out)["params"] == pytest.approx(93.5e9, rel=0.01)  # sqrt(C / 120)
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
    assert data["co2_kg"] == pytest.approx(1024 * 30 * 24 * 0.5 * 1.2 * 0.4)
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
            ["train", "--preset", "llama3.1-405b", "--tokens", "1T", "-a", "l4", "--zero-stage", "0"],
            r"cannot fit: .* GB per accelerator .* GB over the 21.6 GB usable",
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
            ["train", "--preset", "llama2-70b", "--tokens", "2T", "-a", "a100-80gb", "-n", "3"],
            r"No layout that fits llama2-70b divides count 3",
        ),
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

    code = "import sys, dcloop.plan, dcloop.plan.spec; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
