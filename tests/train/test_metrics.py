"""Classification metrics against hand-computed confusion matrices; ROC-AUC against pair counting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcloop.train._metrics import classification_metrics, predict_arrays, roc_auc


def test_three_class_numbers_by_hand() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 2, 2, 0])
    m = classification_metrics(y_true, y_pred, None, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert m["accuracy"] == pytest.approx(6 / 9)
    # a: P=2/3 R=2/3; b: P=1/2 R=1/2; c: P=3/4 R=3/4
    assert m["per_class"]["a"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }
    assert m["precision_macro"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert m["recall_macro"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert "roc_auc" not in m


def test_binary_with_an_unpredicted_class_and_auc() -> None:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.55, 0.45]])
    m = classification_metrics(y_true, y_pred, probs, ["cat", "dog"])
    assert m["confusion_matrix"] == [[2, 0], [2, 0]]
    assert m["per_class"]["dog"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["per_class"]["cat"]["precision"] == pytest.approx(0.5) and m["per_class"]["cat"][
        "f1"
    ] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(0.75)  # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.45>0.1, 0.45>0.4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_roc_auc_equals_pair_counting(rows: list[tuple[bool, int]]) -> None:
    labels = np.array([r[0] for r in rows])
    scores = np.array([r[1] for r in rows], dtype=float)
    pos, neg = scores[labels], scores[~labels]
    auc = roc_auc(labels, scores)
    if len(pos) == 0 or len(neg) == 0:
        assert np.isnan(auc)
        return
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert auc == pytest.approx(wins / (len(pos) * len(neg)))


def test_predict_arrays_softmax_and_single_logit() -> None:
    class Fixed(torch.nn.Module):
        def __init__(self, outputs: int) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(outputs))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean = x.flatten(1).mean(1, keepdim=True) - 0.5
            return torch.cat([-mean, mean], 1)[:, -len(self.scale) :] * self.scale

    x = np.stack([np.full((1, 4, 4), v, dtype=np.uint8) for v in (0, 255, 10, 240)])
    for outputs in (2, 1):
        pred, probs = predict_arrays(Fixed(outputs), x, batch_size=3)
        assert pred.tolist() == [0, 1, 0, 1]
        assert probs.shape == (4, 2) and np.allclose(probs.sum(1), 1.0)


def test_no_samples_score_zero() -> None:
    m = classification_metrics(np.array([], dtype=np.int64), np.array([], dtype=np.int64), None, ["a", "b"])
    assert m["n"] == 0 and m["accuracy"] == 0.0 and m["confusion_matrix"] == [[0, 0], [0, 0]]
    assert m["per_class"]["a"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1), st.floats(0, 1)), min_size=1),
        )
    )
)
def test_same_figures_as_scikit_learn(case: tuple[int, list[tuple[int, int, float]]]) -> None:
    # scikit-learn is not a dependency of dcloop (MLflow brings it in); the figures must agree with it
    sk = pytest.importorskip("sklearn.metrics")
    k, rows = case
    y_true = np.array([r[0] for r in rows])
    y_pred = np.array([r[1] for r in rows])
    positive = np.array([r[2] for r in rows])
    probs = np.stack([1 - positive, positive], axis=1) if k == 2 else None
    m = classification_metrics(y_true, y_pred, probs, [str(c) for c in range(k)])
    labels = list(range(k))
    assert m["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    for name, score in (
        ("precision", sk.precision_score),
        ("recall", sk.recall_score),
        ("f1", sk.f1_score),
    ):
        expected = score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        assert [m["per_class"][str(c)][name] for c in labels] == pytest.approx(expected.tolist(), abs=1e-6)
        assert m[f"{name}_macro"] == pytest.approx(float(expected.mean()), abs=1e-6)
    if probs is not None:
        if len(set(y_true.tolist())) == 2:
            assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(y_true, positive))
        else:
            assert m["roc_auc"] is None
