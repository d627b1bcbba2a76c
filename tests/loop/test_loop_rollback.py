"""`loop.auto_rollback`: the controller moves the champion back when a promotion made it worse live."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from loopkit import set_config

from dcloop._demo_traffic import shift_images
from dcloop.deploy._registry import alias_history, get_model_version
from dcloop.feedback._retrain import retrain
from dcloop.loop._controller import history, watch
from dcloop.loop._rollback import worse_p_value

counts = st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(old=counts, new=counts, margin=st.floats(0, 0.5))
def test_the_p_value_is_a_probability_and_evidence_grows_with_each_mistake(old, new, margin) -> None:
    p = worse_p_value(*old, *new, margin)
    assert 0.0 <= p <= 1.0
    if new[0] > 0 and p < 0.5:
        assert worse_p_value(*old, new[0] - 1, new[1], margin) <= p, "one more mistake: stronger evidence"
    if new[0] / new[1] >= old[0] / old[1]:
        assert p >= 0.5, "a version no worse is never significantly worse"


def test_a_clearly_worse_champion_is_significant_and_a_slightly_worse_one_is_not() -> None:
    assert worse_p_value(90, 100, 40, 100, 0.05) < 1e-6
    assert worse_p_value(90, 100, 87, 100, 0.05) > 0.5


def test_the_controller_rolls_back_a_promotion_whose_live_accuracy_dropped(
    champion_ws, traffic, world
) -> None:
    ws = set_config(champion_ws, "gate", min_improvement=-100.0, max_class_regression=100.0)
    x, y = world["x"], world["y"]
    _, ids, _ = traffic.predict(x[:150])  # the old camera: animals@1 does well
    traffic.label(ids, y[:150])
    assert retrain(ws).challenger == "animals@2" == get_model_version(ws, "animals@champion").ref
    ws = set_config(ws, "loop", auto_rollback={"enabled": True, "min_labels": 50})
    assert watch(ws, polls=1) == [], "animals@2 has no labelled predictions yet"

    assert traffic.switch("animals@champion") == "animals@2"
    _, ids, version = traffic.predict(shift_images("negative", x[150:250]))
    assert version in {"2", "animals@2"}
    traffic.label(ids, (np.asarray(y[150:250]) + 1) % 3)  # what the users now call each class moved
    [rolled] = watch(ws, polls=2, wait=lambda s: False)
    assert (rolled.trigger, rolled.outcome) == ("rollback", "rolled_back")
    assert rolled.reason.startswith("champion back to animals@1: animals@2 live accuracy")
    assert rolled.figures["p_value"] < 0.05 and rolled.figures["labelled"] == 100
    assert get_model_version(ws, "animals@champion").ref == "animals@1"
    last = alias_history(ws, "animals", "champion")[-1]
    assert last.kind == "rollback" and last.reason.startswith("auto rollback:")
    assert [d.outcome for d in history(ws)] == ["rolled_back"]
