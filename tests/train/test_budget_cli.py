"""`dcloop train --budget/--target-accuracy`: parsed into the recipe, recorded with the run; bad
values are one-line errors."""

from __future__ import annotations

import json
import re
import sys

import pytest

from dcloop.cli import main


def _dcloop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["dcloop", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--budget", "ten minutes", "train.budget_s"),
        ("--target-accuracy", "1.5", "train.target_accuracy"),
        ("--val-every-steps", "-1", "train.val_every_steps"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(
    blob_workspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    field: str,
) -> None:
    monkeypatch.chdir(blob_workspace.root)
    code, _, err = _dcloop(monkeypatch, capsys, "train", "--model", "tiny-cnn", flag, value)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and f"`{field}`" in err and "Traceback" not in err


def test_budget_and_target_are_recorded_with_the_run(
    blob_workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(blob_workspace.root)
    args = [
        "train",
        "--model",
        "tiny-cnn",
        "--budget",
        "2m",
        "--target-accuracy",
        "0.8",
        "--val-every-steps",
        "3",
    ]
    args += ["--format", "json"]
    code, out, err = _dcloop(monkeypatch, capsys, *args)
    assert code == 0, err
    spent = json.loads(out)["spent"]
    assert spent["budget_s"] == 120.0 and spent["target_accuracy"] == 0.8
    assert spent["stopped_by"] == "target" and spent["to_target"]["val_accuracy"] >= 0.8
    assert spent["elapsed_s"] < 120.0
    code, out, err = _dcloop(monkeypatch, capsys, "runs", "show", json.loads(out)["run"], "--format", "json")
    assert code == 0, err
    assert json.loads(out)["config"]["budget_s"] == 120.0
    assert json.loads(out)["config"]["val_every_steps"] == 3


def test_the_terminal_runs_show_and_the_report_say_what_stopped_the_run_and_when_the_target_was_met(
    blob_workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(blob_workspace.root)
    args = ["train", "--model", "tiny-cnn", "--budget", "2m", "--target-accuracy", "0.8"]
    code, out, err = _dcloop(monkeypatch, capsys, *args)
    assert code == 0, err
    run = re.search(r"^run ([0-9a-f]{12}) ", out, re.M)
    assert run is not None
    for text in (out, _dcloop(monkeypatch, capsys, "runs", "show", run[1])[1]):
        assert "time (budget and target)" in text
        assert "stopped by" in text and "target" in text
        assert "budget s" in text and "120" in text
        reached = re.search(r"target reached\s+epoch (\d+), ([\d.]+) s, val accuracy ([\d.]+)", text)
        assert reached is not None and float(reached[3]) >= 0.8 and 0 < float(reached[2]) < 120
        assert "energy to target J" in text
    code, out, _ = _dcloop(monkeypatch, capsys, "runs", "show", run[1], "--format", "json")
    report = (blob_workspace.root / json.loads(out)["report"]).read_text(encoding="utf-8")
    assert "Time (budget and target)" in report and "target reached" in report


def test_a_run_with_neither_budget_nor_target_prints_no_time_block(
    blob_workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(blob_workspace.root)
    code, out, err = _dcloop(monkeypatch, capsys, "train", "--model", "tiny-cnn")
    assert code == 0, err
    assert "time (budget and target)" not in out and "speed" in out
