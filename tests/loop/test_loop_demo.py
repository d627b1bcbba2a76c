"""`dcloop demo --fast` end to end: real data, the real server app, drift alerts, a promoted challenger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import dcloop


def test_the_loop_api_is_exported() -> None:
    for name in (
        "monitor",
        "MonitorResult",
        "retrain",
        "RetrainResult",
        "run_loop",
        "LoopTurn",
        "watch",
        "request_turn",
        "run_demo",
        "DemoResult",
    ):
        assert name in dcloop.__all__
        assert callable(getattr(dcloop, name))
    assert dcloop.watch is dcloop.loop.watch is dcloop.loop._controller.watch
    for name in dcloop.loop.__all__:
        assert getattr(dcloop.loop, name) is not None, name


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    from dcloop.errors import DcloopError

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DcloopError, match="is not empty and holds no earlier demo"):
        dcloop.run_demo(tmp_path, fast=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_demo_fast_closes_the_loop(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    for _ in range(2):  # a second run replaces the first demo's workspace
        done = subprocess.run(
            [sys.executable, "-m", "dcloop.cli", "demo", str(folder), "--fast", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["promoted"] and result["champion"] == "animals@1" and result["challenger"] == "animals@2"
    assert result["served_after"] == "animals@2", "the server switched to the new champion"
    assert result["labelled"] == round(0.8 * result["stream"])
    assert result["accuracy_unshifted"] - result["accuracy_shifted_before"] > 0.3, "the shift hurts"
    assert result["accuracy_shifted_after"] > result["accuracy_shifted_before"] + 0.3, (
        "retraining wins it back"
    )
    assert result["recovered"] >= 0.9
    assert len(result["alerts"]) == 3
    assert result["alert_gauges"] == {
        "low_accuracy:animals@1": 1.0,
        "pixel_drift:animals@1": 1.0,
        "embedding_drift:animals@1": 1.0,
    }
    for path in result["reports"].values():
        assert Path(path).is_file(), path
    assert "The loop closing" in Path(result["report"]).read_text()


@pytest.mark.parametrize("fast", [True, False])
def test_demo_config_is_valid(fast: bool) -> None:
    from dcloop.config import validate
    from dcloop.demo import demo_config

    config = validate(demo_config(fast), source="demo")
    assert config.train.model == "seed-cnn" and config.train.epochs == (4 if fast else 8)
    assert config.loop.model == "animals"
