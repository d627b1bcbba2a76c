"""Retraining on labelled feedback: a new data set version with lineage, a challenger run, the gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from loopkit import set_config

from dcloop._demo_traffic import shift_images
from dcloop.deploy._registry import alias_history, get_model_version
from dcloop.feedback._retrain import NothingToRetrain, retrain
from dcloop.store import datasets as store_datasets
from dcloop.store import runs as store_runs
from dcloop.store.predictions import labelled_examples


def label_shifted(traffic, world, n: int | None = None) -> int:
    x, y = shift_images("negative", world["x"][:n]), world["y"][:n]
    _, ids, _ = traffic.predict(x)
    return traffic.label(ids, y)


def test_retrain_builds_a_child_data_set_and_a_warm_started_challenger(champion_ws, traffic, world) -> None:
    ws = set_config(champion_ws, "gate", min_improvement=-100.0, max_class_regression=100.0)
    champion = get_model_version(ws, "animals@champion")
    labelled = label_shifted(traffic, world)
    result = retrain(ws, warm_start=True)

    child = store_datasets.get_dataset(ws.store, result.dataset)
    assert child.parent_id == champion.dataset_id == result.base_dataset
    assert child.source["kind"] == "feedback" and child.source["origin"]["champion"] == "animals@1"
    parent = store_datasets.get_dataset(ws.store, champion.dataset_id)
    assert child.counts["test"] == parent.counts["test"], "the test split stays frozen"
    grown = sum(child.counts["train"].values()) + sum(child.counts["val"].values())
    assert grown == sum(parent.counts["train"].values()) + sum(parent.counts["val"].values()) + result.added
    held_out = result.gate["feedback"]["n"]  # the gate's share, never trained on
    assert 0 < held_out < labelled and result.offered + held_out == labelled
    assert 0 < result.added <= result.offered
    from dcloop.loop._steps import _newest_descendant

    assert _newest_descendant(ws, parent.id).id == child.id, "the next loop turn trains on the feedback too"

    run = store_runs.get_run(ws.store, result.run_id)
    assert run.kind == "retrain" and run.status == "finished"
    assert run.dataset_id == child.id
    assert run.parent_run_id == champion.run_id, "warm start records the champion's run"
    champion_recipe = store_runs.get_run(ws.store, champion.run_id).config
    assert run.config == champion_recipe | {"resize_share": 0.0}, (
        "the champion's recipe, every fine-tuning step at full size"
    )

    assert result.promoted and result.reasons == []
    assert result.challenger == "animals@2" == get_model_version(ws, "animals@champion").ref
    assert get_model_version(ws, "animals@2").run_id == run.id
    assert [m.kind for m in alias_history(ws, "animals", "champion")][-1] == "promote"


def test_the_gate_refuses_a_challenger_that_is_not_better(champion_ws, traffic, world, monkeypatch) -> None:
    from typer.testing import CliRunner

    from dcloop.cli import app

    ws = set_config(champion_ws, "gate", min_improvement=50.0)
    label_shifted(traffic, world)
    monkeypatch.chdir(ws.root)
    out = CliRunner().invoke(app, ["retrain", "--format", "json"])
    assert out.exit_code == 3, out.output
    result = json.loads(out.output)
    assert not result["promoted"]
    assert any("needs +50.00" in reason for reason in result["reasons"])
    assert result["challenger"] == "animals@2"
    assert get_model_version(ws, "animals@champion").ref == "animals@1", "the champion stays"
    assert store_runs.get_run(ws.store, result["run_id"]).parent_run_id is None, "no warm start asked"
    assert result["gate"]["test"]["n"] > 0
    assert result["gate"]["feedback"]["n"] + result["offered"] == len(world["y"])


def test_conflicting_feedback_is_flagged_and_left_out(champion_ws, traffic, monkeypatch) -> None:
    from dcloop.data import load_dataset

    ws = set_config(
        champion_ws, "gate", min_improvement=-100.0, max_class_regression=100.0, feedback_holdout=0.0
    )
    data = load_dataset(ws, get_model_version(ws, "animals@champion").dataset_id)
    x, y = data.arrays("train")
    x, y = np.asarray(x[:30]), np.asarray(y[:30])
    _, ids, _ = traffic.predict(x)
    wrong = (y + 1) % 3
    traffic.label(ids[:10], wrong[:10])  # 10 images the data set already holds, labelled otherwise
    new = np.ascontiguousarray(255 - x[10:])
    _, new_ids, _ = traffic.predict(new)
    traffic.label(new_ids, y[10:])
    monkeypatch.chdir(ws.root)
    from typer.testing import CliRunner

    from dcloop.cli import app

    out = CliRunner().invoke(app, ["retrain"])
    assert out.exit_code == 0, out.output
    assert "20 of 30 (10 conflicts excluded)" in out.output
    assert "promoted" in out.output and "gate: accuracy %" in out.output


def test_too_little_feedback_is_refused(champion_ws, traffic, world) -> None:
    ws = set_config(champion_ws, "gate", feedback_holdout=0.0)
    label_shifted(traffic, world, n=5)
    images, labels = labelled_examples(ws.store, "animals", (1, 28, 28))
    assert images.shape == (5, 1, 28, 28) and labels.shape == (5,)
    with pytest.raises(
        NothingToRetrain,
        match=r"too few labelled examples to retrain on: 5 labelled predictions, 5 of them with inputs still "
        r"stored, 0 held out for the gate \(`gate.feedback_holdout` 0\), 5 left; retraining needs at least 20",
    ):
        retrain(ws)
    assert len(store_datasets.list_datasets(ws.store)) == 1, "nothing was written"


def test_refusal_names_each_count_that_fell_short(champion_ws, traffic, world) -> None:
    """Labels, inputs still stored, the gate's held-out share: the refusal says where they went."""
    from dcloop.store.predictions import forget, list_predictions

    ws = set_config(champion_ws, "gate", feedback_holdout=0.5)
    label_shifted(traffic, world, n=12)
    forget(ws.store, ids=[p.id for p in list_predictions(ws.store, with_inputs=False)][:4])
    stored = len(labelled_examples(ws.store, "animals", (1, 28, 28))[1])
    left = len(labelled_examples(ws.store, "animals", (1, 28, 28), holdout=0.5, part="train")[1])
    assert stored == 8 and 0 < left < stored
    with pytest.raises(NothingToRetrain) as refused:
        retrain(ws)
    assert (
        f"12 labelled predictions, 8 of them with inputs still stored, {stored - left} held out for the gate "
        f"(`gate.feedback_holdout` 0.5), {left} left; retraining needs at least 20"
    ) in str(refused.value)


def test_forgotten_inputs_do_not_count(champion_ws, traffic, world) -> None:
    from dcloop.store.predictions import forget, list_predictions

    label_shifted(traffic, world, n=30)
    ids = [p.id for p in list_predictions(champion_ws.store, with_inputs=False)]
    forget(champion_ws.store, ids=ids[:15])
    images, _ = labelled_examples(champion_ws.store, "animals", (1, 28, 28))
    assert len(images) == 15


def test_the_gate_judges_on_feedback_retraining_never_saw(champion_ws, traffic, world) -> None:
    from dcloop.data import load_dataset

    ws = set_config(champion_ws, "gate", min_improvement=-100.0, max_class_regression=100.0)
    labelled = label_shifted(traffic, world)
    result = retrain(ws)
    held_x, _ = labelled_examples(ws.store, "animals", (1, 28, 28), holdout=0.2, part="holdout")
    assert result.gate["feedback"]["n"] == len(held_x) > 0
    assert result.offered + len(held_x) == labelled
    trained_on = load_dataset(ws, result.dataset)
    seen = {bytes(np.asarray(image)) for split in ("train", "val") for image in trained_on.arrays(split)[0]}
    assert not any(bytes(image) in seen for image in held_x), "a held-out image reached training"


@given(share=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_the_holdout_share_is_stable_and_close_to_asked(share: float, seed: int) -> None:
    from dcloop.store.predictions import in_holdout

    images = np.random.default_rng(seed).integers(0, 256, (2000, 1, 4, 4), dtype=np.uint8)
    inside = [in_holdout(image, share) for image in images]
    assert abs(sum(inside) / len(images) - share) < 0.05  # binomial sd at 2,000 draws <= 0.011
    assert inside == [in_holdout(image.copy(), share) for image in images], "same pixels, same side"
    wider = min(share + 0.04, 0.99)
    assert all(in_holdout(image, wider) for image, kept in zip(images, inside, strict=True) if kept)
