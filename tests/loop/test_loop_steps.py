"""The loop's step table: typed outputs that survive being recorded as JSON and read back on resume."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dcloop.loop import STEPS
from dcloop.loop._steps import TABLE, Monitored, Registered, Retrained, read_back, recorded, status

SAMPLES = {
    "prepare": {"dataset": "d" * 64, "dataset_name": "animals", "source_version": "s" * 64},
    "train": {"run": "r" * 32, "run_accuracy": 0.93},
    "optimize": {"optimization": "o1", "variant": "v1", "variant_method": "onnx", "optimization_report": "r.html"},
    "register": {"model": "animals", "registered": "animals@2", "version": 2},
    "gate": {"gate_passed": False, "gate_reasons": ["accuracy 1.0 < 2.0"], "gate_note": "gate refused", "champion": "animals@1"},
    "deploy": {"served": "animals@1"},
    "feedback": {"predictions": 10, "labelled": 8, "traffic": {"stream": 10}},
    "monitor": {"alerts": ["low accuracy"], "monitor_report": "m.html", "monitor_note": None},
    "retrain": {"challenger": None, "retrain_promoted": False, "retrain_reasons": [], "retrain_dataset": None,
                "retrain_run": None, "champion_after": None, "retrain_note": "needs at least 20"},
}  # fmt: skip


def test_the_table_is_the_step_order() -> None:
    assert STEPS == tuple(step.name for step in TABLE) == tuple(SAMPLES)
    assert len({step.output for step in TABLE}) == len(TABLE), "one output type per step"


@pytest.mark.parametrize("step", TABLE, ids=lambda s: s.name)
def test_outputs_round_trip_through_json(step) -> None:
    output = step.output(**SAMPLES[step.name])
    stored = json.loads(json.dumps(recorded(output)))
    assert stored == SAMPLES[step.name]
    assert read_back(step.output, stored) == output


def test_output_fields_do_not_clash_across_steps() -> None:
    """A turn's outputs are every step's merged into one object, so no two steps may share a field."""
    names = [f.name for step in TABLE for f in dataclasses.fields(step.output) if not f.metadata]
    assert len(names) == len(set(names))


def test_in_process_results_are_not_recorded() -> None:
    output = Monitored(alerts=["x"], monitor_report="m.html", result=object())  # type: ignore[arg-type]
    assert "result" not in recorded(output) and read_back(Monitored, recorded(output)).result is None


def test_a_record_missing_a_field_reads_back_as_none() -> None:
    """A step recorded by an older dcloop without a field its output now has runs again on resume."""
    assert read_back(Registered, {"model": "animals", "registered": "animals@1"}) is None


def test_status_follows_the_note() -> None:
    assert status(Retrained(retrain_note="too few labels")) == "skipped"
    assert status(Retrained(challenger="animals@2")) == "finished"
    assert status(Registered("animals", "animals@1", 1)) == "finished"
