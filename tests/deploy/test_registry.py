"""Model registry, aliases with history, the promotion gate and the `dcloop models` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from deploykit import CLASSES, halves, halves_onnx, tiny_cnn_onnx
from hypothesis import given
from hypothesis import strategies as st

from dcloop.deploy import (
    GateRefused,
    alias_history,
    evaluate_gate,
    get_model_version,
    list_model_versions,
    promote,
    register_model_version,
    rollback,
)
from dcloop.deploy._registry import RollbackError
from dcloop.errors import ConfigError, NotFoundError
from dcloop.feedback import add_labels, log_predictions, new_prediction
from dcloop.store.predictions import in_holdout


def test_register_copies_and_content_addresses(workspace, onnx_path) -> None:
    v1 = register_model_version(workspace, onnx_path, name="pets", classes=CLASSES)
    v2 = register_model_version(workspace, onnx_path, name="pets", classes=CLASSES, alias="challenger")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.sha256 == v2.sha256 and v1.path != v2.path
    assert v2.path.endswith("artifacts/models/pets/2/model.onnx") and os.path.isfile(v2.path)
    assert v1.input_shape == [1, 28, 28] and v1.classes == CLASSES
    assert get_model_version(workspace, "pets@challenger") == v2
    assert get_model_version(workspace, "pets") == v2  # no champion yet: newest
    assert get_model_version(workspace, "pets@1") == v1
    assert [(v.version, a) for v, a in list_model_versions(workspace, "pets")] == [
        (1, []),
        (2, ["challenger"]),
    ]


def test_register_refusals(workspace, onnx_path) -> None:
    with pytest.raises(ConfigError, match="needs its class names"):
        register_model_version(workspace, onnx_path, name="pets")
    with pytest.raises(ConfigError, match="outputs 2 logits but 3 classes were given"):
        register_model_version(workspace, onnx_path, name="pets", classes=["a", "b", "c"])
    with pytest.raises(ConfigError, match="Model name must be letters"):
        register_model_version(workspace, onnx_path, name="bad@name", classes=CLASSES)
    with pytest.raises(NotFoundError, match="No run, variant or ONNX file 'zzzz'"):
        register_model_version(workspace, "zzzz")
    register_model_version(workspace, onnx_path, name="pets", classes=CLASSES)
    with pytest.raises(NotFoundError, match=r"Unknown model 'pest'.*Did you mean 'pets'"):
        get_model_version(workspace, "pest")
    with pytest.raises(NotFoundError, match="Model 'pets' has no alias 'best'"):
        get_model_version(workspace, "pets@best")
    # digits that are not ASCII, or a number no version column holds, are names nobody set
    for selector in ("²", "99999999999999999999", "2147483648"):
        with pytest.raises(NotFoundError, match=f"Model 'pets' has no alias '{selector}'"):
            get_model_version(workspace, f"pets@{selector}")


def test_first_promotion_needs_no_gate_and_rollback_walks_history(workspace, onnx_path) -> None:
    for _ in range(3):
        register_model_version(workspace, onnx_path, name="pets", classes=CLASSES)
    with pytest.raises(RollbackError, match="no earlier champion"):
        rollback(workspace, "pets")
    assert promote(workspace, "pets", version=1).decision is None
    # Same weights: every gain is 0.0 points, which passes min_improvement 0 (needs a data set though).
    promote(workspace, "pets", version=2, force=True, reason="hotfix")
    promote(workspace, "pets", version=3, force=True)
    assert rollback(workspace, "pets").to_version == 2
    assert rollback(workspace, "pets").to_version == 1
    with pytest.raises(RollbackError):
        rollback(workspace, "pets")
    moves = alias_history(workspace, "pets", "champion")
    assert [(m.from_version, m.to_version, m.kind) for m in moves] == [
        (None, 1, "promote"), (1, 2, "force"), (2, 3, "force"), (3, 2, "rollback"), (2, 1, "rollback"),
    ]  # fmt: skip
    assert "forced (hotfix)" in moves[1].reason and "no data set version" in moves[1].reason


@pytest.fixture
def gated(workspace, tmp_path):
    """pets@1 (the good halves reader, champion) and pets@2 (always 'cat', challenger), with data."""
    from dcloop.data import import_source

    x, y = halves(200)
    np.savez(tmp_path / "halves.npz", x=x, y=y, classes=np.array(CLASSES))
    dataset = import_source(workspace, str(tmp_path / "halves.npz"), name="halves")
    good = halves_onnx(tmp_path / "good.onnx", good=True)
    bad = halves_onnx(tmp_path / "bad.onnx", good=False)
    register_model_version(workspace, good, name="pets", classes=CLASSES, dataset_id=dataset.id)
    promote(workspace, "pets", version=1)
    register_model_version(
        workspace, bad, name="pets", classes=CLASSES, dataset_id=dataset.id, alias="challenger"
    )
    return workspace


def test_gate_refuses_a_worse_challenger_with_reasons(gated) -> None:
    decision = evaluate_gate(gated, "pets", "challenger", "champion")
    assert not decision.passed
    test = decision.metrics["test"]
    assert test["champion"] == pytest.approx(100.0) and test["challenger"] == pytest.approx(50.0)
    assert any("recall of class 'dog' drops 100.00 points" in r for r in decision.reasons)
    with pytest.raises(
        GateRefused, match=r"Gate refused pets@2 over champion pets@1: test split accuracy 50.00%"
    ):
        promote(gated, "pets")
    assert get_model_version(gated, "pets@champion").version == 1


def test_a_significant_class_drop_is_refused_even_when_noise_is_allowed(gated) -> None:
    from dcloop.workspace import open_workspace

    config = gated.root / "dcloop.yaml"
    config.write_text(
        config.read_text(encoding="utf-8") + "gate:\n  class_regression_p: 0.05\n", encoding="utf-8"
    )
    decision = evaluate_gate(open_workspace(gated.root), "pets", "challenger", "champion")
    (reason,) = [r for r in decision.reasons if "recall of class 'dog'" in r]
    assert reason.startswith("test split recall of class 'dog' drops 100.00 points (at most 2.00, p = ")


@given(
    lost=st.integers(0, 60),
    won=st.integers(0, 60),
    same=st.integers(0, 60),
)
def test_worse_p_value_is_an_exact_one_sided_sign_test(lost: int, won: int, same: int) -> None:
    from math import comb

    from dcloop.deploy._gate import worse_p_value

    champion = np.array([True] * lost + [False] * won + [True] * same, dtype=bool)
    challenger = np.array([False] * lost + [True] * won + [True] * same, dtype=bool)
    p = worse_p_value(champion, challenger)
    n = lost + won
    assert 0.0 < p <= 1.0
    assert p == (1.0 if n == 0 else sum(comb(n, k) for k in range(lost, n + 1)) / 2**n)
    if lost > 0:  # one more loss instead of a win is stronger evidence
        assert worse_p_value(np.append(champion, True), np.append(challenger, False)) <= p
    if won >= lost:
        assert p >= 0.5  # a challenger that wins as often as it loses is never significantly worse


def test_gate_passes_the_better_one_and_counts_feedback(gated) -> None:
    # Swap roles: the good model challenges the bad one.
    promote(gated, "pets", version=2, force=True, reason="test setup")
    decision = evaluate_gate(gated, "pets", "pets@1", "champion")
    assert decision.passed, decision.reasons
    assert decision.metrics["feedback"]["n"] == 0
    # Feedback on which the good model is wrong (labels flipped) makes it fail there.
    x, y = halves(400, seed=5)
    champion = get_model_version(gated, "pets@champion")
    rows = [
        new_prediction(x[i][None], np.array([0.5, 0.5]), CLASSES, champion, latency_ms=1) for i in range(400)
    ]
    log_predictions(gated.store, rows)
    add_labels(gated.store, [(r.id, int(1 - y[i])) for i, r in enumerate(rows)])
    decision = evaluate_gate(gated, "pets", "pets@1", "champion")
    assert not decision.passed
    held_out = sum(in_holdout(image, gated.config.gate.feedback_holdout) for image in x)
    assert decision.metrics["feedback"]["n"] == held_out  # only the share retraining never sees
    assert gated.config.gate.min_feedback_labels <= held_out < 400
    assert [r for r in decision.reasons if r.startswith("feedback accuracy 0.00%")]


def test_gate_refuses_mismatched_classes(gated, tmp_path) -> None:
    other = tiny_cnn_onnx(tmp_path / "t.onnx")
    register_model_version(gated, other, name="pets", classes=["dog", "cat"])
    decision = evaluate_gate(gated, "pets", "pets@3", "pets@1")
    assert not decision.passed and "answers classes ['dog', 'cat']" in decision.reasons[0]


def test_models_cli(gated, monkeypatch) -> None:
    from typer.testing import CliRunner

    from dcloop.cli import app

    monkeypatch.chdir(gated.root)
    runner = CliRunner()
    refused = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "models", "promote", "pets"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 3
    assert refused.stderr.strip().count("\n") == 0
    assert "error: Gate refused pets@2 over champion pets@1: test split accuracy 50.00%" in refused.stderr
    forced = runner.invoke(
        app, ["models", "promote", "pets", "--force", "--reason", "demo", "--format", "json"]
    )
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.output)["kind"] == "force"
    history = runner.invoke(app, ["models", "history", "pets", "--format", "json"])
    assert [m["to_version"] for m in json.loads(history.output)] == [1, 2, 2, None]
    back = runner.invoke(app, ["models", "rollback", "pets", "--format", "json"])
    assert json.loads(back.output)["to_version"] == 1
    listed = runner.invoke(app, ["models", "versions", "pets", "--format", "json"])
    assert [(r["version"], r["aliases"]) for r in json.loads(listed.output)] == [(1, "champion"), (2, "")]


def test_register_a_trained_run_exports_it_with_lineage(workspace, tmp_path) -> None:
    from dcloop import config
    from dcloop.config import TrainConfig
    from dcloop.data import import_source
    from dcloop.deploy import load_model
    from dcloop.train import load_trained, train
    from dcloop.workspace import open_workspace

    (workspace.root / "dcloop.yaml").write_text("tracking:\n  mlflow: false\n", encoding="utf-8")
    ws = open_workspace(workspace.root, config.load(workspace.root / "dcloop.yaml"))
    x, y = halves(120)
    np.savez(tmp_path / "halves.npz", x=x, y=y, classes=np.array(CLASSES))
    dataset = import_source(ws, str(tmp_path / "halves.npz"), name="halves")
    run = train(ws, TrainConfig(model="tiny-cnn", epochs=1, batch_size=32, threads=1))
    version = register_model_version(ws, run.id, alias="challenger")
    assert (version.ref, version.run_id, version.dataset_id, version.method) == (
        "halves@1",
        run.id,
        dataset.id,
        "export",
    )
    assert version.classes == CLASSES and version.input_shape == [1, 28, 28]
    import torch

    images = x[:8, None].astype(np.float32) / 255
    with torch.no_grad():
        expected = load_trained(ws, run.id).model(torch.from_numpy(images)).numpy()
    served = load_model(version)
    assert np.allclose(served.logits(images), expected, atol=1e-4)
    # chunked class prediction of uint8 images equals one whole-batch call, and handles no images
    pixels = x[:8, None]
    whole = served.logits(pixels.astype(np.float32) / 255).argmax(axis=1)
    assert np.array_equal(served.predict_classes(pixels, chunk=3), whole)
    assert served.predict_classes(pixels[:0]).shape == (0,)


def test_registry_on_every_store_backend(tmp_path, store_url, onnx_path) -> None:
    from dcloop import config
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(tmp_path / "ws-backend")
    (ws.root / "dcloop.yaml").write_text(f"store:\n  url: '{store_url}'\n", encoding="utf-8")
    ws = open_workspace(ws.root, config.load(ws.root / "dcloop.yaml"))
    assert ws.store_url == store_url
    for _ in range(2):
        register_model_version(ws, onnx_path, name="pets", classes=CLASSES)
    promote(ws, "pets", version=1)
    promote(ws, "pets", version=2, force=True, reason="backend test")
    assert rollback(ws, "pets").to_version == 1
    assert [m.kind for m in alias_history(ws, "pets")] == ["promote", "force", "rollback"]
    assert [a for _, a in list_model_versions(ws, "pets")] == [["champion"], []]
    assert get_model_version(ws, "pets").version == 1
