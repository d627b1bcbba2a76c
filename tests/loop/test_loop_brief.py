"""The one-line step summary and the gate-evidence rows that the CLI and the turn report share."""

from __future__ import annotations

from dcloop.deploy._gate import EVIDENCE_COLUMNS, evidence_rows
from dcloop.loop import StepResult


def test_step_brief_shortens_ids_and_numbers_and_caps_the_length() -> None:
    run = "0123456789abcdef" * 4
    step = StepResult("train", "finished", {"run": run, "accuracy": 0.987654, "classes": ["cat", "dog"]}, 1.0)
    assert step.brief() == 'run=0123456789ab accuracy=0.9877 classes=["cat", "dog"]'
    assert step.brief(limit=20) == "run=0123456789ab ..."
    assert len(step.brief(limit=20)) == 20


def test_evidence_rows_keep_only_compared_evidence() -> None:
    gate = {
        "test split": {"n": 400, "challenger": 97.5, "champion": 96.0, "recall": {}},
        "feedback": {"n": 12, "skipped": "fewer than 50 labels"},
        "passed": True,
    }
    assert evidence_rows(gate) == [["test split", 400, 97.5, 96.0]]
    assert len(EVIDENCE_COLUMNS) == 4
