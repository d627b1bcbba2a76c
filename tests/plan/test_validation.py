"""The planner against published training runs: hours within 15%, energy and CO2 within 5%."""

from __future__ import annotations

import pytest

from dcloop.plan._validation import ENERGY_TOLERANCE, HOURS_TOLERANCE, load_published_runs, validate_run

RUNS = load_published_runs()


def test_required_runs_are_present_with_sources_and_provenance() -> None:
    names = {run["name"] for run in RUNS}
    assert {"gpt3-175b", "llama-65b", "llama2-70b", "llama3.1-405b", "bloom-176b"} <= names
    for run in RUNS:
        assert len(run["source"]) > 30
        provenance = run["provenance"]
        assert provenance.get("measured") and provenance.get("computed"), run["name"]


@pytest.mark.parametrize("run", RUNS, ids=[r["name"] for r in RUNS])
def test_planner_matches_published_run(run) -> None:
    result = validate_run(run)
    if run.get("rate"):
        assert result.hours_error is not None and abs(result.hours_error) <= HOURS_TOLERANCE
    else:
        assert result.hours_planned is None  # no stated throughput: no check is faked
    assert result.energy_error is not None or result.co2_error is not None
    for error in (result.energy_error, result.co2_error):
        if error is not None:
            assert abs(error) <= ENERGY_TOLERANCE
    assert 0.1 < result.mfu_from_published_hours < 0.6
    assert result.passed
