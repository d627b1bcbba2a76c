"""The search space: validated up front with one-line errors; sampled values land in the recipe."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcloop import config
from dcloop.config import ParamSpec, TrainConfig
from dcloop.errors import ConfigError
from dcloop.optimize._space import apply_params, current_values, recipe_changes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float", "low": 0.1, "high": 0.01}, "the range is inverted: low 0.1 > high 0.01"),
        ({"type": "int", "low": 8, "high": 8}, "the range is empty: low == high == 8"),
        ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "a log range needs low > 0, got low 0.0"),
        ({"type": "float", "low": -1, "high": 0.1, "log": True}, "a log range needs low > 0, got low -1.0"),
        ({"type": "categorical", "choices": []}, "a categorical needs a non-empty `choices` list"),
        ({"type": "float", "high": 0.1}, "a float range needs both `low` and `high`"),
    ],
)
def test_bad_range_names_the_parameter(spec: dict, message: str) -> None:
    with pytest.raises(
        ConfigError, match=r"^`tune\.space\.lr` in dcloop\.yaml must satisfy: " + message
    ) as info:
        config.validate({"tune": {"space": {"lr": spec}}})
    assert "\n" not in str(info.value)


def test_unknown_parameter_and_empty_space() -> None:
    with pytest.raises(ConfigError, match=r"`tune\.space` .* unknown parameter\(s\) lrate; known: .*lr"):
        config.validate({"tune": {"space": {"lrate": {"type": "categorical", "choices": [1]}}}})
    with pytest.raises(ConfigError, match="the search space is empty"):
        config.validate({"tune": {"space": {}}})


def test_apply_params_sets_fields_and_scales_augmentation() -> None:
    base = TrainConfig(batch_size=128)
    tuned = apply_params(
        base, {"lr": 0.01, "batch_size": 32, "augment.hflip": False, "augment_strength": 2.0}
    )
    assert (tuned.lr, tuned.batch_size, tuned.augment.hflip) == (0.01, 32, False)
    assert tuned.augment.rotation == 2 * base.augment.rotation and tuned.augment.zoom == 2 * base.augment.zoom
    assert not apply_params(base, {"augment_strength": 0.0}).augment.enabled
    assert recipe_changes(base, tuned) == {
        "batch_size": 32,
        "lr": 0.01,
        "augment": {
            "rotation": 2 * base.augment.rotation,
            "width_shift": 2 * base.augment.width_shift,
            "height_shift": 2 * base.augment.height_shift,
            "shear": 2 * base.augment.shear,
            "zoom": 2 * base.augment.zoom,
            "hflip": False,
        },
    }


def test_a_value_train_rejects_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"`tune.space.lr` gives train.lr = 50.0"):
        apply_params(TrainConfig(), {"lr": 50.0})


@given(strength=st.floats(min_value=0.0, max_value=50.0))
def test_any_strength_gives_a_valid_recipe(strength: float) -> None:
    tuned = apply_params(TrainConfig(), {"augment_strength": strength})
    assert 0 <= tuned.augment.width_shift < 1 and 0 <= tuned.augment.rotation <= 180


def test_current_values_only_inside_the_space() -> None:
    space = {
        "lr": ParamSpec(type="float", low=1e-4, high=1e-2, log=True),
        "batch_size": ParamSpec(type="categorical", choices=[32, 64]),
        "width": ParamSpec(type="int", low=16, high=48),
        "augment_strength": ParamSpec(type="float", low=0.0, high=2.0),
    }
    assert current_values(TrainConfig(lr=3e-3, batch_size=128, width=32), space) == {
        "lr": 3e-3,
        "width": 32,
        "augment_strength": 1.0,
    }
