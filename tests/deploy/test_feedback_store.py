"""The feedback store contract, run on every backend (SQLite file and PostgreSQL schema)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from dcloop.errors import DataError
from dcloop.feedback import (
    add_labels,
    enforce_retention,
    forget,
    import_labels,
    labelled_predictions,
    log_predictions,
    new_prediction,
    prediction_pixels,
    prediction_stats,
)
from dcloop.store import open_store

CLASSES = ["cat", "dog", "owl"]


@dataclass(frozen=True)
class Answering:
    id: str = "v1id"
    name: str = "pets"
    version: int = 1


@pytest.fixture
def store(store_url: str):
    return open_store(store_url)


def _rows(n: int, model: Answering = Answering(), seed: int = 0, store_input: bool = True):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        pixels = rng.integers(0, 256, (1, 4, 4), dtype=np.uint8)
        probs = rng.dirichlet(np.ones(len(CLASSES)))
        rows.append(new_prediction(pixels, probs, CLASSES, model, latency_ms=1.5, store_input=store_input))
    return rows


def test_logged_predictions_round_trip_with_inputs_and_aggregates(store) -> None:
    rows = _rows(5)
    log_predictions(store, rows)
    add_labels(store, [(r.id, "owl") for r in rows[:3]])
    got = labelled_predictions(store)
    assert [g.id for g in got] == [r.id for r in rows[:3]]
    for g, r in zip(got, rows, strict=False):
        assert g.label == "owl" and g.label_index == 2
        assert g.pred_label == r.pred_label and g.confidence == pytest.approx(r.confidence)
        assert np.array_equal(prediction_pixels(g), np.frombuffer(r.input, np.uint8).reshape(1, 4, 4))
        assert g.mean_intensity == pytest.approx(float(prediction_pixels(g).mean()))
        assert list(g.probabilities) == CLASSES


def test_a_large_batch_round_trips_exactly_in_one_call(store) -> None:
    from dcloop.store._prediction_rows import INSERT_CHUNK
    from dcloop.store.predictions import get_predictions

    rows = _rows(2 * INSERT_CHUNK + 7, seed=3) + _rows(3, seed=4, store_input=False)
    log_predictions(store, rows)
    got = get_predictions(store, [r.id for r in rows])
    assert len(got) == len(rows)
    for r in rows:
        g = got[r.id]
        assert (g.input, g.input_bytes, g.input_shape, g.input_sha256) == (
            r.input,
            r.input_bytes,
            r.input_shape,
            r.input_sha256,
        )
        assert g.probabilities == r.probabilities and g.created_at == r.created_at
        assert (g.pred_index, g.latency_ms, g.endpoint, g.model_version_id) == (
            r.pred_index,
            r.latency_ms,
            r.endpoint,
            r.model_version_id,
        )


def test_prediction_ids_are_unique_uuid7_growing_with_time() -> None:
    import time
    import uuid

    from dcloop.store.predictions import time_ordered_ids

    first = time_ordered_ids(2000)
    assert len(set(first)) == 2000 and all(len(i) == 32 for i in first)
    assert {(uuid.UUID(hex=i).version, uuid.UUID(hex=i).variant) for i in first} == {(7, uuid.RFC_4122)}
    stamp = int(first[0][:12], 16)  # milliseconds since the epoch
    assert abs(stamp - time.time() * 1000) < 60_000
    later = time_ordered_ids(10)
    assert min(i[:12] for i in later) >= max(i[:12] for i in first), "a later batch sorts after"


def test_labels_by_index_and_latest_label_wins(store) -> None:
    rows = _rows(2)
    log_predictions(store, rows)
    assert add_labels(store, [(rows[0].id, 1), (rows[1].id, "2")]) == 2
    add_labels(store, [(rows[0].id, "cat")], source="review")
    got = {g.id: g for g in labelled_predictions(store)}
    assert (got[rows[0].id].label, got[rows[0].id].label_source) == ("cat", "review")
    assert got[rows[1].id].label == "owl"


def test_bad_labels_are_refused_all_at_once_and_nothing_is_stored(store) -> None:
    rows = _rows(2)
    log_predictions(store, rows)
    with pytest.raises(
        DataError, match=r"no prediction 'nope'.*label 'eel' of prediction .* is not one of cat, dog, owl"
    ):
        add_labels(store, [(rows[0].id, "dog"), ("nope", "cat"), (rows[1].id, "eel")])
    assert labelled_predictions(store) == []


def test_filters_by_model_version_and_time(store) -> None:
    log_predictions(
        store, _rows(2, Answering("v1id", "pets", 1)) + _rows(3, Answering("v2id", "pets", 2), seed=1)
    )
    add_labels(store, [(p.id, 0) for p in _all(store)])
    assert len(labelled_predictions(store, model_version="v2id")) == 3
    assert len(labelled_predictions(store, model_name="pets")) == 5
    assert labelled_predictions(store, since=datetime.now(UTC) + timedelta(minutes=1)) == []


def _all(store):
    from dcloop.store.predictions import list_predictions

    return list_predictions(store)


def test_forget_clears_inputs_but_keeps_aggregates(store) -> None:
    rows = _rows(4)
    log_predictions(store, rows)
    add_labels(store, [(r.id, "dog") for r in rows])
    assert forget(store, ids=[rows[0].id, rows[1].id]) == 2
    assert forget(store, ids=[rows[0].id]) == 0  # already gone
    got = {g.id: g for g in labelled_predictions(store)}
    assert got[rows[0].id].input is None and got[rows[0].id].input_bytes == 0
    assert got[rows[0].id].mean_intensity == pytest.approx(rows[0].mean_intensity)
    assert got[rows[0].id].label == "dog" and got[rows[0].id].pred_label == rows[0].pred_label
    assert got[rows[2].id].input is not None
    assert forget(store, before=datetime.now(UTC) + timedelta(seconds=1)) == 2
    with pytest.raises(DataError, match="needs prediction ids or a --before date"):
        forget(store)


def test_retention_caps_total_size_oldest_first(store, monkeypatch) -> None:
    from dcloop.store import _prediction_rows

    monkeypatch.setattr(_prediction_rows, "CLEAR_BATCH", 3)  # several transactions
    rows = _rows(10)  # 16 bytes each
    for row in rows:
        log_predictions(store, [row])
    assert enforce_retention(store, max_input_mb=40 / 1024 / 1024).inputs_cleared == 8
    kept = [p for p in _all(store) if p.input is not None]
    assert [p.id for p in kept] == [r.id for r in rows[-2:]]
    assert enforce_retention(store, input_days=1e-9).inputs_cleared == 2


def test_the_input_size_cap_clears_unlabelled_inputs_first(store) -> None:
    rows = _rows(6)  # 16 bytes each
    for row in rows:
        log_predictions(store, [row])
    add_labels(store, [(rows[0].id, "cat"), (rows[1].id, "dog")])
    assert enforce_retention(store, max_input_mb=48 / 1024 / 1024).inputs_cleared == 3
    kept = [p.id for p in _all(store) if p.input is not None]
    assert kept == [rows[0].id, rows[1].id, rows[5].id]


def test_predictions_without_stored_inputs(store) -> None:
    rows = _rows(2, store_input=False)
    log_predictions(store, rows)
    stats = prediction_stats(store)
    assert stats["predictions"] == 2 and stats["stored_inputs"] == 0 and stats["labelled"] == 0


def test_prediction_stats_accuracy(store) -> None:
    rows = _rows(4)
    log_predictions(store, rows)
    add_labels(store, [(rows[0].id, rows[0].pred_label), (rows[1].id, rows[1].pred_label)])
    wrong = next(c for c in CLASSES if c != rows[2].pred_label)
    add_labels(store, [(rows[2].id, wrong)])
    stats = prediction_stats(store, model_version="v1id")
    assert stats["labelled"] == 3 and stats["accuracy"] == pytest.approx(2 / 3)
    assert sum(stats["predicted_classes"].values()) == 4


def test_import_labels_from_csv_and_jsonl(store, tmp_path) -> None:
    rows = _rows(3)
    log_predictions(store, rows)
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("prediction_id,label\n" + f"{rows[0].id},cat\n{rows[1].id},1\n")
    assert import_labels(store, csv_file) == 2
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(json.dumps({"prediction_id": rows[2].id, "label": "owl"}) + "\n")
    assert import_labels(store, jsonl) == 1
    assert {g.label_source for g in labelled_predictions(store)} == {
        "import:labels.csv",
        "import:labels.jsonl",
    }
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prediction_id": "x"}\n')
    with pytest.raises(DataError, match="line 1 must be an object with prediction_id and label"):
        import_labels(store, bad)
    (tmp_path / "cols.csv").write_text("id,label\n1,cat\n")
    with pytest.raises(DataError, match="must be a CSV with columns prediction_id,label"):
        import_labels(store, tmp_path / "cols.csv")


def test_feedback_cli_import_and_forget(workspace, monkeypatch, tmp_path) -> None:
    from typer.testing import CliRunner

    from dcloop.cli import app

    rows = _rows(3)
    log_predictions(workspace.store, rows)
    (tmp_path / "labels.csv").write_text(f"prediction_id,label\n{rows[0].id},dog\n{rows[1].id},0\n")
    monkeypatch.chdir(workspace.root)
    runner = CliRunner()
    imported = runner.invoke(app, ["feedback", "import", str(tmp_path / "labels.csv"), "--format", "json"])
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output)["labels"] == 2
    forgot = runner.invoke(
        app, ["feedback", "forget", "--ids", f"{rows[0].id},{rows[1].id}", "--format", "json"]
    )
    assert json.loads(forgot.output) == {"forgotten": 2}
    later = runner.invoke(app, ["feedback", "forget", "--before", "2999-01-01", "--format", "json"])
    assert json.loads(later.output) == {"forgotten": 1}
    assert all(p.input is None and p.mean_intensity > 0 for p in _all(workspace.store))


def test_feedback_cli_retain_applies_the_configured_bounds(workspace, monkeypatch) -> None:
    import dataclasses

    from typer.testing import CliRunner

    from dcloop.cli import app

    old = datetime.now(UTC) - timedelta(days=400)  # past feedback.prediction_days and retention_days
    rows = [dataclasses.replace(r, created_at=old) for r in _rows(3)] + _rows(2, seed=5)
    log_predictions(workspace.store, rows)
    add_labels(workspace.store, [(rows[0].id, "cat")])
    monkeypatch.chdir(workspace.root)
    result = CliRunner().invoke(app, ["feedback", "retain", "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert (record["inputs_cleared"], record["predictions_dropped"]) == (3, 2)  # inputs go first
    assert record["log_mb"] <= workspace.config.feedback.max_predictions_mb
    kept = {p.id: p for p in _all(workspace.store)}
    assert list(kept) == [r.id for r in (rows[0], *rows[3:])] and kept[rows[0].id].input is None
    assert prediction_stats(workspace.store)["predictions"] == 5


def test_export_for_labelling_round_trips_through_import(store, tmp_path) -> None:
    import dataclasses

    from PIL import Image

    from dcloop.feedback._export import COLUMNS, export_predictions, write_rows

    start = datetime.now(UTC)
    rows = [
        dataclasses.replace(r, created_at=start + timedelta(seconds=i))
        for i, r in enumerate(_rows(6, seed=7))
    ]
    log_predictions(store, rows)
    add_labels(store, [(rows[0].id, "owl")])
    every = export_predictions(store)
    assert [r["prediction_id"] for r in every] == [r.id for r in rows]  # oldest first
    assert every[0]["label"] == "owl" and all(r["label"] == "" for r in every[1:])
    todo = export_predictions(store, unlabelled=True, order="confidence", limit=3, images=tmp_path / "png")
    least = sorted(rows[1:], key=lambda r: r.confidence)[:3]
    assert [r["prediction_id"] for r in todo] == [r.id for r in least]
    for row, prediction in zip(todo, least, strict=True):
        assert row["predicted"] == prediction.pred_label and row["model"] == "pets@1"
        with Image.open(row["input"]) as image:  # the stored pixels, exactly
            assert np.array_equal(np.asarray(image)[None], prediction_pixels(prediction))
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == sorted(f"{r.id}.png" for r in least)
    # a labeller fills in two of the three rows; the third stays empty and is skipped on import
    out = tmp_path / "todo.csv"
    assert write_rows(todo, "csv", out) is None
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 4
    filled = [lines[0]] + [
        line.replace(f"{r.id},,", f"{r.id},{label},", 1)
        for line, r, label in zip(lines[1:], least, ["cat", "dog", ""], strict=True)
    ]
    out.write_text("\n".join(filled) + "\n")
    assert import_labels(store, out) == 2
    labels = {p.id: p.label for p in labelled_predictions(store)}
    assert labels == {rows[0].id: "owl", least[0].id: "cat", least[1].id: "dog"}
    jsonl = write_rows(todo, "jsonl", None)
    assert jsonl is not None and [json.loads(line)["prediction_id"] for line in jsonl.splitlines()] == [
        r.id for r in least
    ]
    # the same in JSON lines: an empty or null label is skipped, a filled one imported
    items = [json.loads(line) for line in jsonl.splitlines()]
    items[1]["label"], items[2]["label"] = None, "owl"
    (tmp_path / "todo.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    assert import_labels(store, tmp_path / "todo.jsonl") == 1
    assert {p.id: p.label for p in labelled_predictions(store)}[least[2].id] == "owl"


def test_export_refuses_a_used_images_folder_and_writes_nothing(store, tmp_path) -> None:
    from dcloop.errors import ConfigError
    from dcloop.feedback._export import export_predictions

    log_predictions(store, _rows(2))
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty; give a new folder"):
        export_predictions(store, images=used)
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    with pytest.raises(ConfigError, match=r"--limit must be at least 1\. Got 0\."):
        export_predictions(store, limit=0)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary left behind


def test_feedback_cli_export(workspace, monkeypatch, tmp_path) -> None:
    import csv
    import dataclasses

    from typer.testing import CliRunner

    from dcloop.cli import app

    start = datetime.now(UTC)
    rows = [
        dataclasses.replace(r, created_at=start + timedelta(seconds=i))
        for i, r in enumerate(_rows(4, seed=9))
    ]
    log_predictions(workspace.store, rows)
    add_labels(workspace.store, [(rows[1].id, "cat")])
    monkeypatch.chdir(workspace.root)
    runner = CliRunner()
    shown = runner.invoke(app, ["feedback", "export", "--unlabelled"])
    assert shown.exit_code == 0, shown.output
    assert [r["prediction_id"] for r in csv.DictReader(shown.output.splitlines())] == [
        r.id for r in rows if r is not rows[1]
    ]
    written = runner.invoke(
        app, ["feedback", "export", "--model", "pets", "-o", str(tmp_path / "all.csv"), "--images", "png"]
    )
    assert written.exit_code == 0, written.output
    exported = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert [r["label"] for r in exported] == ["", "cat", "", ""]
    assert all(Path(r["input"]).is_file() for r in exported)
    none = runner.invoke(app, ["feedback", "export", "--model", "other"])
    assert (
        none.exit_code == 0
        and none.output
        == ",".join(
            ["prediction_id", "label", "predicted", "confidence", "model", "created_at", "endpoint", "input"]
        )
        + "\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--order", "random"], "error: --order must be time or confidence. Got 'random'."),
        (["--format", "xml"], "error: --format must be csv or jsonl. Got 'xml'."),
        (["--limit", "0"], "error: --limit must be at least 1. Got 0."),
    ],
)
def test_feedback_export_bad_options_are_one_line(workspace, args, message) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "dcloop.cli", "feedback", "export", *args],
        cwd=workspace.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_export_gives_a_text_prediction_its_text_and_writes_no_image(store, tmp_path) -> None:
    import csv
    import io

    from dcloop.feedback import new_text_predictions
    from dcloop.feedback._export import export_predictions, write_rows

    texts = ['the cat sat, "quoted"\nover two lines', "ünïcode ✓"]
    logged = new_text_predictions(
        texts,
        [7, 2],
        [0.0, 0.5],
        np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]),
        CLASSES,
        Answering(),
        latency_ms=[1.0, 1.0],
    )
    log_predictions(store, logged)
    rows = export_predictions(store, images=tmp_path / "png")
    # one batch shares one time, so its order is the store's; compare by id
    assert {r["prediction_id"]: (r["input"], r["predicted"]) for r in rows} == {
        p.id: (text, label) for p, text, label in zip(logged, texts, ["dog", "cat"], strict=True)
    }
    assert list((tmp_path / "png").iterdir()) == []
    text = write_rows(rows, "csv", None)
    assert text is not None and [r["input"] for r in csv.DictReader(io.StringIO(text))] == [
        r["input"] for r in rows
    ]
