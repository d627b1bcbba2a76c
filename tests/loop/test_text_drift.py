"""Text drift: token length, unknown-token and unseen-token shares move under a shifted stream of
texts and stay put under an unshifted one, both as features and through `monitor` on served traffic."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(
    0, str(Path(__file__).parents[1] / "deploy")
)  # the text model helpers live beside the serving tests
from textkit import TEXT_CLASSES, sentences, text_model_folder, tiny_tokenizer

from dcloop.feedback import psi

FEATURES = ("token_length", "unknown_share", "unseen_share")


def _spec(tmp_path: Path, max_length: int = 16):
    from dcloop.deploy._text import load_spec

    path = tmp_path / "tokenizer.json"
    path.write_text(tiny_tokenizer().to_str(), encoding="utf-8")
    return load_spec(path, max_length)


def _shifted(n: int, seed: int) -> list[str]:
    """Longer texts, a third of whose words the vocabulary does not know."""
    return sentences(n, seed=seed, words=(9, 13), unknown=0.35)


def test_text_features_move_under_a_shift_and_stay_put_without_one(tmp_path: Path) -> None:
    from dcloop.feedback._text_drift import text_features, vocabulary

    spec = _spec(tmp_path, max_length=12)  # the shifted texts are longer: some get cut
    seen = vocabulary(spec, sentences(400, seed=5))
    reference = text_features(spec, sentences(400, seed=0), seen)
    same = text_features(spec, sentences(200, seed=1), seen)
    shifted = text_features(spec, _shifted(200, seed=2), seen)
    for name in FEATURES:
        assert reference[name].shape == (400,) and np.isfinite(reference[name]).all()
        assert psi(reference[name], same[name]) < 0.1, name
        assert psi(reference[name], shifted[name]) > 0.25, name
    assert reference["unknown_share"].max() == 0 and shifted["unknown_share"].mean() > 0.15
    assert reference["token_length"].max() <= 10 and shifted["token_length"].max() == 12  # cut at max_length


def _text_dataset(ws, folder: Path) -> str:
    from dcloop.data import import_source

    texts = sentences(300, seed=0)
    path = folder / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([t, TEXT_CLASSES[i % 2]] for i, t in enumerate(texts))
    record = import_source(ws, str(path), name="reviews")
    assert record.modality == "text"
    return record.id


@pytest.mark.slow
def test_monitor_reports_text_drift_of_served_traffic(tmp_path: Path, workspace) -> None:
    from dcloop.deploy import create_app, in_process_client, promote, register_model_version
    from dcloop.feedback import monitor

    dataset_id = _text_dataset(workspace, tmp_path)
    onnx = text_model_folder(tmp_path / "bundle")
    for _ in range(2):  # version 1 gets ordinary texts, version 2 shifted ones
        register_model_version(workspace, onnx, name="reviews", classes=TEXT_CLASSES, dataset_id=dataset_id)
    promote(workspace, "reviews", version=1)
    for ref, texts in (("reviews@1", sentences(80, seed=7)), ("reviews@2", _shifted(80, seed=8))):
        with in_process_client(create_app(workspace, ref)) as client:
            for text in texts:
                assert client.post("/predict", json={"text": text}).status_code == 200
    result = monitor(workspace, "reviews")
    drift = {d.ref: d for d in result.drift}
    assert set(drift) == {"reviews@1", "reviews@2"}
    for d in drift.values():
        assert tuple(d.psi) == FEATURES and d.current_n == 80 and d.reference_split == "val+test"
    threshold = workspace.config.monitor.psi_threshold
    assert max(drift["reviews@1"].psi.values()) < threshold
    assert min(drift["reviews@2"].psi.values()) > threshold
    kinds = {(a.kind, a.subject) for a in result.alerts}
    assert ("text_drift", "reviews@2") in kinds and ("text_drift", "reviews@1") not in kinds
