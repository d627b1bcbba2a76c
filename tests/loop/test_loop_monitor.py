"""Monitoring on real traffic through the server: alerts fire on shifted inputs, not on unshifted ones."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from dcloop._demo_traffic import shift_images
from dcloop.errors import NotFoundError
from dcloop.feedback._monitor import monitor

runner = CliRunner()


def send(traffic, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Predict every image through the server and label every prediction through /feedback."""
    predicted, ids, _ = traffic.predict(x)
    traffic.label(ids, y)
    return predicted


def kinds(result) -> set[str]:
    return {a.kind for a in result.alerts}


def test_no_alert_on_unshifted_traffic(champion_ws, traffic, world) -> None:
    predicted = send(traffic, world["x"], world["y"])
    result = monitor(champion_ws, report=champion_ws.reports_dir / "monitor.html")
    [health] = result.versions
    assert health.ref == "animals@1"
    assert health.predictions == health.labelled == len(world["y"])
    assert health.accuracy == pytest.approx(float((predicted == world["y"]).mean()))
    assert health.accuracy > 0.6, (
        "the champion should beat the accuracy threshold on unseen in-distribution images"
    )
    assert sum(b["predictions"] for b in health.buckets) == len(world["y"])
    assert sum(health.confidence_counts) == len(world["y"])
    [drift] = result.drift
    assert drift.reference_split == "val+test"
    assert max(drift.psi.values()) < champion_ws.config.monitor.psi_threshold
    assert drift.embedding is not None and drift.embedding["ks_pvalue"] > champion_ws.config.monitor.ks_pvalue
    assert kinds(result) == set()
    gauges = traffic.alert_gauges()  # other servers' alerts in this process may show too
    assert {
        k: gauges[k] for k in ("low_accuracy:animals@1", "pixel_drift:animals@1", "embedding_drift:animals@1")
    } == {
        "low_accuracy:animals@1": 0.0,
        "pixel_drift:animals@1": 0.0,
        "embedding_drift:animals@1": 0.0,
    }
    html = result.report.read_text()
    assert "Live accuracy" in html and "Input drift of animals@1" in html and html.count("<img") >= 4


def test_alerts_fire_on_shifted_traffic(champion_ws, traffic, world) -> None:
    shifted = shift_images("negative", world["x"])
    predicted = send(traffic, shifted, world["y"])
    result = monitor(champion_ws)
    [health] = result.versions
    assert health.accuracy == pytest.approx(float((predicted == world["y"]).mean()))
    assert kinds(result) == {"low_accuracy", "pixel_drift", "embedding_drift"}
    [drift] = result.drift
    assert drift.psi["mean_intensity"] > 1.0
    assert drift.embedding["ks_pvalue"] < 1e-6
    gauges = traffic.alert_gauges()
    assert gauges["pixel_drift:animals@1"] == gauges["embedding_drift:animals@1"] == 1.0


def test_monitor_window_and_cli(champion_ws, traffic, world, monkeypatch) -> None:
    from dcloop.cli import app

    send(traffic, shift_images("negative", world["x"][:60]), world["y"][:60])
    monkeypatch.chdir(champion_ws.root)
    out = runner.invoke(app, ["monitor", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {a["kind"] for a in data["alerts"]} >= {"pixel_drift"}
    failing = runner.invoke(app, ["monitor", "--fail-on-alert", "--report", "m.html"])
    assert failing.exit_code == 4
    assert (champion_ws.root / "m.html").is_file()
    later = runner.invoke(app, ["monitor", "--since", "2999-01-01"])
    assert isinstance(later.exception, NotFoundError)
    assert "no predictions since 2999-01-01" in str(later.exception)


def test_cli_errors_are_one_line(champion_ws) -> None:
    for args, code, text in [
        (["monitor", "--since", "yesterday"], 2, "--since must be an ISO date or time"),
        (["monitor"], 1, "Model 'animals' has no predictions; serve it and send traffic first."),
        (["loop", "--until", "nowhere"], 2, "--until must be one of prepare, train,"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "dcloop.cli", *args], cwd=champion_ws.root, capture_output=True, text=True
        )
        assert done.returncode == code, done.stderr
        assert text in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_monitor_needs_predictions_and_a_known_model(champion_ws) -> None:
    with pytest.raises(NotFoundError, match="no predictions"):
        monitor(champion_ws)
    with pytest.raises(NotFoundError, match=r"Unknown model 'animal'.*Did you mean 'animals'"):
        monitor(champion_ws, "animal")
