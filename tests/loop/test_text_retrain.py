"""Retraining a text model: labelled text feedback from the server becomes a new text data set version,
a text-tiny challenger trains on it, and the gate judges it on texts (test split and held-out feedback).
On the way, monitoring tests the traffic's drift, embeddings included, with the trained run's model."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

POSITIVE = ("good", "great", "fine", "lovely", "superb", "brilliant", "fun", "warm")
NEGATIVE = ("bad", "awful", "dull", "boring", "weak", "poor", "terrible", "slow")
NEUTRAL = ("the", "a", "film", "movie", "plot", "story", "acting", "music", "ending", "scene", "it", "was")
CONFIG = {
    "tracking": {"mlflow": False},
    "train": {
        "model": "text-tiny",
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-3,
        "threads": 1,
        "precision": "fp32",
        "width": 8,
        "max_length": 16,
        "ema_decay": 0.0,
    },
    "optimize": {"methods": ["onnx"], "latency_runs": 10, "throughput_batches": 1},
    "gate": {"min_feedback_labels": 10, "min_improvement": -100.0, "max_class_regression": 100.0},
    "loop": {"model": "reviews", "optimize_methods": ["onnx"], "retrain_min_labels": 20},
}


def _reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """Texts whose label is the sentiment of their one opinion word, among neutral words."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choices(NEUTRAL, k=rng.randint(3, 7))
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        out.append((" ".join(words), label))
    return out


@pytest.mark.slow
def test_labelled_text_feedback_becomes_a_new_version_and_a_gated_challenger(tmp_path: Path) -> None:
    from dcloop.data import import_source, load_dataset
    from dcloop.deploy import create_app, get_model_version, in_process_client
    from dcloop.feedback import challenge, monitor, retrain
    from dcloop.workspace import init_workspace, open_workspace

    ws = init_workspace(tmp_path / "ws")
    (ws.root / "dcloop.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    ws = open_workspace(ws.root)
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *_reviews(240, seed=0)])
    base = import_source(ws, str(path), name="reviews")
    first = challenge(ws, ws.config.train, base.id, model="reviews", run_name="reviews-first")
    assert first.verdict.passed and first.verdict.champion == "reviews@1"
    champion = get_model_version(ws, "reviews@champion")
    assert champion.input_shape == [] and (Path(champion.path).parent / "tokenizer.json").is_file()

    traffic = _reviews(60, seed=1)
    with in_process_client(create_app(ws, "reviews@champion", token="t")) as client:
        for text, label in traffic:
            pid = client.post("/predict", json={"text": text}).json()["prediction_id"]
            r = client.post(
                "/feedback",
                json={"prediction_id": pid, "label": label},
                headers={"Authorization": "Bearer t"},
            )
            assert r.status_code == 200
    report = monitor(ws, "reviews")  # 60 stored texts >= monitor.min_samples: drift is tested
    (drift,) = report.drift
    assert tuple(drift.psi) == ("token_length", "unknown_share", "unseen_share") and drift.current_n == 60
    assert drift.embedding is not None, drift.note  # KS on the trained run's pooled embeddings
    assert 0.0 <= drift.embedding["ks_pvalue"] <= 1.0 and drift.embedding["components"] >= 1
    result = retrain(ws, "reviews")
    new = load_dataset(ws, result.dataset)
    assert new.modality == "text" and result.base_dataset == base.id
    assert 0 < result.added <= result.offered <= len(traffic)  # the gate's held-out share stays out
    texts = {t for t, _ in traffic}
    before = load_dataset(ws, base.id)
    assert len(new.y) == len(before.y) + result.added
    assert sum(str(t) in texts for t in new.x) - sum(str(t) in texts for t in before.x) == result.added
    assert result.challenger == "reviews@2" and "feedback" in result.gate and "test" in result.gate
    assert result.gate["test"]["n"] == len(before.splits["test"])  # the frozen test split of texts
