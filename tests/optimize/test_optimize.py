"""`optimize` end to end on a real subset: variants recorded with lineage, files in place, report
holding the table's numbers, recommended variant by the rule; bad input gets one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcloop.errors import ConfigError, NotFoundError
from dcloop.optimize import get_variant, list_variants, optimize


@pytest.fixture(scope="module")
def result(catdog_ws, trained_run):
    return optimize(catdog_ws, trained_run.id[:8])


def test_every_method_gives_a_recorded_variant(result, trained_run, catdog_ws) -> None:
    assert [v.method for v in result.variants] == ["onnx", "int8", "prune", "distill"]
    stored = list_variants(catdog_ws, run=trained_run.id)
    assert {v.id for v in result.variants} <= {v.id for v in stored}
    for variant in result.variants:
        path = Path(variant.onnx_path)
        assert path.is_file() and path.parent == catdog_ws.artifacts_dir / "variants" / variant.id
        assert variant.run_id == trained_run.id and variant.optimization_id == result.id
        assert 0.0 <= variant.metrics["accuracy"] <= 1.0 and variant.metrics["latency_p50_ms"] > 0
        assert variant.metrics["energy_source"] in {"rapl", "estimated"}
    assert not list((catdog_ws.artifacts_dir / "variants").glob(".staging-*"))
    baseline, int8, pruned, student = result.variants
    assert baseline.params["parity_max_abs_diff"] <= 1e-4
    assert int8.parent_variant_id == baseline.id and int8.params["calibration_images"] == 128
    assert pruned.metrics["flops"] <= 0.5 * baseline.metrics["flops"]
    assert pruned.metrics["params"] < baseline.metrics["params"]
    assert student.params["student"] == "tiny-cnn" and student.params["width"] == 4


def test_recommended_follows_the_rule(result, catdog_ws) -> None:
    rule = catdog_ws.config.optimize.select
    assert sum(v.metrics["recommended"] for v in result.variants) == 1
    allowed = [v for v in result.variants if v.metrics["accuracy_drop"] <= rule.max_accuracy_drop + 1e-9]
    fastest = min(allowed, key=lambda v: v.metrics["latency_p50_ms"])
    assert result.recommended.id == fastest.id


def test_report_holds_the_table_numbers(result) -> None:
    from dcloop.optimize._report import variant_row

    html = result.report_path.read_text(encoding="utf-8")
    assert html.count("<img") == 2  # the two Pareto plots
    for variant in result.variants:
        row = variant_row(variant)
        for value in (row[0], row[2], row[8]):  # id, accuracy %, size KiB
            assert f"<td>{value:.4g}</td>" in html if isinstance(value, float) else str(value) in html


def test_get_variant_by_prefix_and_frozen(result, catdog_ws) -> None:
    variant = get_variant(catdog_ws, result.variants[1].id[:10])
    assert variant == result.variants[1]
    with pytest.raises(AttributeError):
        variant.method = "x"  # type: ignore[misc]


def test_unknown_run_and_variant(catdog_ws) -> None:
    with pytest.raises(NotFoundError, match="No run 'nope'"):
        optimize(catdog_ws, "nope")
    with pytest.raises(NotFoundError, match=r"No variant 'feedbeef'\. See `dcloop variants list`"):
        get_variant(catdog_ws, "feedbeef")


def test_unknown_method_and_student(ws_with, trained_run) -> None:
    with pytest.raises(
        ConfigError, match=r"--methods must be a comma list of onnx, int8, prune, distill\. Got unknown fp8"
    ):
        optimize(ws_with(), trained_run.id, methods=["fp8"])
    with pytest.raises(NotFoundError, match=r"Unknown student model .* 'resnet-xl'"):
        optimize(ws_with(optimize={"student": "resnet-xl"}), trained_run.id, methods=["distill"])


def test_failure_leaves_nothing_behind(ws_with, trained_run, catdog_ws) -> None:
    """A parity check that cannot pass stops the optimization: no variant row, no folder, no staging."""
    from dcloop.errors import DcloopError

    variants_dir = catdog_ws.artifacts_dir / "variants"
    before = {p.name for p in variants_dir.iterdir()} if variants_dir.exists() else set()
    rows = len(list_variants(catdog_ws))
    ws = ws_with(optimize={"parity_tolerance": 1e-30})
    with pytest.raises(
        DcloopError, match=r"ONNX export differs from PyTorch by .* above optimize.parity_tolerance"
    ):
        optimize(ws, trained_run.id, methods=["onnx", "int8"])
    after = {p.name for p in variants_dir.iterdir()} if variants_dir.exists() else set()
    assert after == before and len(list_variants(catdog_ws)) == rows


def test_cli_variants_list_show_and_errors(result, catdog_ws, monkeypatch) -> None:
    from dcloop.cli import app

    monkeypatch.chdir(catdog_ws.root)
    runner = CliRunner()
    listed = runner.invoke(app, ["variants", "list", "--format", "json"])
    assert listed.exit_code == 0 and result.variants[0].id in listed.stdout
    shown = runner.invoke(app, ["variants", "show", result.variants[1].id[:8]])
    assert shown.exit_code == 0 and "int8" in shown.stdout
    missing = runner.invoke(app, ["variants", "show", "feedbeef"])
    assert missing.exit_code != 0 and re.search(r"No variant 'feedbeef'", str(missing.exception))


def test_cli_optimize_json(trained_run, catdog_ws, monkeypatch) -> None:
    import json

    from dcloop.cli import app

    monkeypatch.chdir(catdog_ws.root)
    out = CliRunner().invoke(app, ["optimize", trained_run.id[:8], "--methods", "onnx", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [v["method"] for v in data["variants"]] == ["onnx"] and data["recommended"] == data["variants"][0][
        "id"
    ]
    assert Path(data["report"]).is_file() and Path(data["variants"][0]["onnx_path"]).is_file()
