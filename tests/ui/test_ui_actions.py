"""Changes of state through the dashboard: the token, the answers, and the records they leave."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dcloop.store import predictions, registry

CLASSES = ["cat", "dog"]


@pytest.fixture
def filled(workspace):
    """pets@1 registered (no alias yet) and four predictions of it with stored inputs."""

    def build(version: int) -> registry.ModelVersion:
        return registry.ModelVersion("a" * 32, "pets", version, datetime.now(UTC), "/x.onnx", "0" * 64, CLASSES, [1, 2, 2], None, None, None, "export", {}, {})  # fmt: skip

    model = registry.register_version(workspace.store, "pets", build)
    rows = predictions.new_predictions(
        np.arange(16, dtype=np.uint8).reshape(4, 1, 2, 2),
        np.eye(2)[[0, 1, 0, 1]],
        CLASSES,
        model,
        latency_ms=[1.0] * 4,
    )
    predictions.log_predictions(workspace.store, rows)
    return workspace, [r.id for r in rows]


def _client(ws, token, warm=False):
    from dcloop.ui import create_app

    return TestClient(create_app(ws, token=token, metrics_url="http://127.0.0.1:9/metrics", warm=warm))


def test_read_only_dashboard_refuses_every_change(filled):
    ws, ids = filled
    with _client(ws, None) as client:
        for path, form in [("/actions/promote", {"model": "pets"}), ("/actions/forget", {"ids": ids[0]})]:
            answer = client.post(path, data={**form, "token": "anything"}, follow_redirects=False)
            assert answer.status_code == 403 and "read-only" in answer.json()["error"]
        assert "read-only dashboard" in client.get("/models").text
    assert registry.aliases(ws.store, "pets") == {}
    assert all(p.input is not None for p in predictions.list_predictions(ws.store))


def test_promote_with_the_token_is_recorded_as_the_cli_records_it(filled):
    ws, _ = filled
    with _client(ws, "s3cret") as client:
        assert client.post("/actions/promote", data={"model": "pets", "version": "1"}).status_code == 401
        wrong = client.post("/actions/promote", data={"model": "pets", "version": "1", "token": "nope"})
        assert wrong.status_code == 403
        assert registry.aliases(ws.store, "pets") == {}
        done = client.post(
            "/actions/promote",
            data={"model": "pets", "version": "1", "token": "s3cret", "reason": "first one"},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/models?done=")
        assert "is now champion" in client.get(done.headers["location"]).text
        refused = client.post("/actions/rollback", data={"model": "pets", "token": "s3cret"})
        assert refused.status_code == 409  # no earlier champion to go back to: nothing changes
        unknown = client.post("/actions/promote", data={"model": "cows", "version": "1", "token": "s3cret"})
        assert unknown.status_code == 404
        bad = client.post("/actions/promote", data={"model": "pets", "version": "x1", "token": "s3cret"})
        assert bad.status_code == 422
    assert registry.aliases(ws.store, "pets") == {"champion": 1}
    move = registry.alias_moves(ws.store, "pets")[-1]
    assert (move.alias, move.to_version, move.kind, move.reason) == ("champion", 1, "promote", "first one")


def test_forget_deletes_the_inputs_and_keeps_the_rows(filled):
    ws, ids = filled
    with _client(ws, "s3cret") as client:
        assert client.post("/actions/forget", data={"ids": "", "token": "s3cret"}).status_code == 422
        answer = client.post("/actions/forget", data={"ids": f"{ids[0]}, {ids[2]}", "token": "s3cret"})
        assert answer.status_code == 200 and "Forgot the stored inputs of 2" in answer.text
    kept = {p.id: p for p in predictions.list_predictions(ws.store)}
    assert len(kept) == 4
    assert [kept[i].input is None for i in ids] == [True, False, True, False]
    assert dataclasses.asdict(kept[ids[0]])["confidence"] == 1.0  # the aggregates stay


def test_warm_start_counts_the_log_before_the_first_visit(filled):
    import threading

    from dcloop.ui import _queries as q

    ws, ids = filled
    q.AGGREGATES.clear()
    with _client(ws, None, warm=True):
        for thread in [t for t in threading.enumerate() if t.name == "dcloop-ui-warm"]:
            thread.join(timeout=120)
        key = ("feedback", ws.store_url, None, ws.config.gate.feedback_holdout)
        counted = q.AGGREGATES.get(key, lambda: pytest.fail("the first visit had to count the log"))
    assert counted == {"predictions": len(ids), "labelled": 0, "held_out": 0}
